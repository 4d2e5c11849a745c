"""Thresholding of the data prediction: static and dynamic (Imagen) rules, and the thresholding
option of dpm_solver_pp (diffnb.guidance, diffnb.dpm_solver)."""

import numpy as np
import pytest
import torch

from diffnb import guidance, metrics, sde, toy
from diffnb import guidance_demo as gdm
from diffnb.guidance import dynamic_threshold, static_threshold, thresholded_eps_model
from diffnb.samplers import dpm_solver_pp
from diffnb.schedules import DiscreteVP

F64 = torch.float64
SCH = DiscreteVP.linear()


def _x0(n=6, d=16, scale=2.0, seed=0):
    return scale * torch.randn(n, d, generator=torch.Generator().manual_seed(seed), dtype=F64)


def _by_sorting(x0, p, m):
    """Imagen's rule written out: linear interpolation between order statistics of |x0| per sample."""
    out = []
    for row in x0.reshape(x0.shape[0], -1):
        v = np.sort(row.abs().numpy())
        k = (len(v) - 1) * p
        lo = int(np.floor(k))
        hi = min(lo + 1, len(v) - 1)
        s = max(v[lo] + (v[hi] - v[lo]) * (k - lo), m)
        out.append(np.clip(row.numpy(), -s, s) / s)
    return torch.tensor(np.stack(out), dtype=F64).reshape(x0.shape)


@pytest.mark.parametrize("p, m", [(0.995, 1.0), (0.9, 1.0), (0.5, 0.7), (1.0, 1.0)])
def test_dynamic_threshold_is_imagens_rule(p, m):
    x0 = _x0()
    assert torch.allclose(dynamic_threshold(x0, p, m), _by_sorting(x0, p, m), rtol=1e-13, atol=1e-14)


def test_dynamic_threshold_per_sample_and_in_range_samples_unchanged():
    x0 = _x0(n=5, d=3, scale=1.0)
    x0[0] = torch.tensor([0.2, -0.5, 0.9], dtype=F64)  # quantile <= 1: untouched
    out = dynamic_threshold(x0)
    assert torch.equal(out[0], x0[0])
    for i in range(5):
        assert torch.equal(dynamic_threshold(x0[i:i + 1])[0], out[i])
    assert float(out.abs().max()) <= 1.0


def test_dynamic_threshold_percentile_1_scales_the_largest_to_1():
    x0 = _x0()
    out = dynamic_threshold(x0, percentile=1.0)
    big = x0.abs().amax(1) > 1
    assert torch.allclose(out.abs().amax(1)[big], torch.ones(int(big.sum()), dtype=F64))
    assert torch.allclose(out[big], (x0 / x0.abs().amax(1, keepdim=True))[big])


def test_one_value_per_sample_dynamic_is_static_clipping():
    x0 = _x0(n=200, d=1)
    assert torch.equal(dynamic_threshold(x0), static_threshold(x0))


def test_static_threshold_and_shapes():
    x0 = _x0(n=4, d=12).reshape(4, 3, 4)
    out = static_threshold(x0, 1.5)
    assert out.shape == x0.shape and float(out.abs().max()) == 1.5
    assert dynamic_threshold(x0).shape == x0.shape
    assert dynamic_threshold(x0.float()).dtype == torch.float32


@pytest.mark.parametrize("kwargs, err, name", [
    ({"percentile": 0.0}, ValueError, "percentile"), ({"percentile": 1.5}, ValueError, "percentile"),
    ({"percentile": True}, TypeError, "percentile"), ({"percentile": "0.9"}, TypeError, "percentile"),
    ({"max_value": 0.0}, ValueError, "max_value"), ({"max_value": float("inf")}, ValueError, "max_value"),
    ({"max_value": None}, TypeError, "max_value")])
def test_bad_threshold_options(kwargs, err, name):
    with pytest.raises(err, match=name):
        dynamic_threshold(_x0(), **kwargs)
    with pytest.raises(err, match=name):
        dpm_solver_pp(lambda x, t: x, _x0(2, 1), SCH, SCH.timesteps(3), thresholding="dynamic", **kwargs)


def test_bad_thresholding_kind_and_input():
    model = lambda x, t: torch.zeros_like(x)  # noqa: E731
    with pytest.raises(ValueError, match="thresholding"):
        dpm_solver_pp(model, _x0(2, 1), SCH, SCH.timesteps(3), thresholding="clip")
    with pytest.raises(TypeError, match="thresholding"):
        dpm_solver_pp(model, _x0(2, 1), SCH, SCH.timesteps(3), thresholding=True)
    with pytest.raises(TypeError, match="x0"):
        dynamic_threshold([1.0, 2.0])
    with pytest.raises(ValueError, match="thresholding"):
        thresholded_eps_model(model, SCH, None)


# --- inside DPM-Solver++ ----------------------------------------------------------------------------
MIX = gdm.rescale_into(toy.mixture_nd(16), 1.0, 3.0)
MODEL = gdm.guided_model(MIX, SCH, 0, 6.0)
X_T = torch.randn(24, 16, generator=torch.Generator().manual_seed(1), dtype=F64)


def test_no_thresholding_is_unchanged_and_a_wide_static_range_changes_nothing():
    ts = SCH.timesteps(12, "logsnr", t_end=1.0)
    base = dpm_solver_pp(MODEL, X_T, SCH, ts)
    assert torch.equal(dpm_solver_pp(MODEL, X_T, SCH, ts, thresholding=None), base)
    assert torch.equal(dpm_solver_pp(MODEL, X_T, SCH, ts, thresholding="static", max_value=1e6), base)


@pytest.mark.parametrize("kind", ["static", "dynamic"])
@pytest.mark.parametrize("method, order", [("multistep", 2), ("multistep", 3), ("singlestep", 2),
                                           ("singlestep", 3)])
def test_thresholded_solver_is_the_plain_solver_on_the_thresholded_model(kind, method, order):
    ts = SCH.timesteps(9, "logsnr", t_end=1.0)
    thr = dpm_solver_pp(MODEL, X_T, SCH, ts, order=order, method=method, thresholding=kind)
    plain = dpm_solver_pp(thresholded_eps_model(MODEL, SCH, kind), X_T, SCH, ts, order=order, method=method)
    assert torch.allclose(thr, plain, rtol=1e-10, atol=1e-10)
    assert float((thr - dpm_solver_pp(MODEL, X_T, SCH, ts, order=order, method=method)).abs().max()) > 1e-3


@pytest.mark.parametrize("kind", ["static", "dynamic"])
def test_every_data_prediction_and_the_final_sample_in_range(kind):
    infos = []
    ts = torch.cat([SCH.timesteps(10, "logsnr", t_end=1.0), torch.zeros(1, dtype=F64)])
    out = dpm_solver_pp(MODEL, X_T, SCH, ts, thresholding=kind, callback=infos.append)
    assert all(float(d["x0_hat"].abs().max()) <= 1.0 + 1e-15 for d in infos)
    assert float(out.abs().max()) <= 1.0 + 1e-15
    unthresholded = dpm_solver_pp(MODEL, X_T, SCH, ts)
    assert float(unthresholded.abs().max()) > 1.0


def test_thresholded_sampler_converges_to_the_thresholded_ode():
    x_T = X_T[:4]
    model = thresholded_eps_model(MODEL, SCH, "dynamic")  # kinks: a loose tolerance keeps the solve cheap
    ref = sde.reference_ode_solve(model, x_T, SCH, 1000.0, 1.0, rtol=1e-6, atol=1e-6)
    errs = [metrics.rms_error(dpm_solver_pp(MODEL, x_T, SCH, SCH.timesteps(n, "logsnr", t_end=1.0),
                                            thresholding="dynamic"), ref) for n in (20, 40, 80, 160)]
    assert all(b < a for a, b in zip(errs, errs[1:]))
    assert errs[-1] < errs[0] / 10


def test_diffusers_dynamic_thresholding_with_default_max_value_is_clipping():
    diffusers = pytest.importorskip("diffusers")
    x0 = _x0(n=5, d=16, scale=1.5).reshape(5, 1, 16)
    sched = diffusers.DPMSolverMultistepScheduler(thresholding=True)
    assert torch.allclose(sched._threshold_sample(x0), static_threshold(x0), rtol=0, atol=1e-15)
    wide = diffusers.DPMSolverMultistepScheduler(thresholding=True, sample_max_value=1e9)
    assert torch.allclose(wide._threshold_sample(x0), dynamic_threshold(x0), rtol=1e-12, atol=1e-14)
    assert float((static_threshold(x0) - dynamic_threshold(x0)).abs().max()) > 0.1
