"""diffnb.errata_checks: the notes' samplers as written and corrected, the 3M weighting, certify."""

import math
import re

import pytest
import sympy as sp
import torch

from diffnb import errata_checks as ec
from diffnb import metrics, samplers, sde, toy
from diffnb.schedules import DiscreteVP, LinearVP

F64 = torch.float64
SCHED = DiscreteVP.linear(T=60, beta_start=1e-3, beta_end=0.2)
MIX = toy.seed_mixture_1d()
MODEL = MIX.eps_model(SCHED)
X_T = torch.randn(64, 1, generator=torch.Generator().manual_seed(0), dtype=F64)


def gen(k=1):
    return torch.Generator().manual_seed(k)


def maxdiff(a, b):
    return float((a - b).abs().max())


def test_seed000_ddpm_corrected_is_ddpm_and_as_written_is_not():
    ref = samplers.ddpm(MODEL, X_T, SCHED, SCHED.timesteps(SCHED.T), generator=gen())
    assert maxdiff(ec.seed000_ddpm(MODEL, X_T, SCHED, gen(), as_written=False), ref) < 1e-11
    assert maxdiff(ec.seed000_ddpm(MODEL, X_T, SCHED, gen()), ref) > 1e-2


def test_seed001_ddim_corrected_is_ddim_and_as_written_is_not():
    ts = SCHED.timesteps(12)
    ref = samplers.ddim(MODEL, X_T, SCHED, ts, eta=1.0, generator=gen())
    assert maxdiff(ec.seed001_ddim(MODEL, X_T, SCHED, ts, generator=gen(), as_written=False), ref) < 1e-11
    assert maxdiff(ec.seed001_ddim(MODEL, X_T, SCHED, ts, generator=gen()), ref) > 1e-2
    det = samplers.ddim(MODEL, X_T, SCHED, ts, eta=0.0)  # eta = 0: varsigma^2 = varsigma = 0
    assert maxdiff(ec.seed001_ddim(MODEL, X_T, SCHED, ts, eta=0.0, generator=gen()), det) < 1e-11


def test_seed003_arrays_and_ddpm():
    right, wrong = ec.seed003_arrays(SCHED, as_written=False), ec.seed003_arrays(SCHED)
    t = torch.arange(1, SCHED.T + 1, dtype=F64)
    assert torch.allclose(right.alphas_cumprod, SCHED.alpha_bar(t), rtol=0, atol=1e-14)
    assert torch.allclose(right.sqrt_one_minus_alphas_cumprod, SCHED.sigma(t), rtol=0, atol=1e-14)
    assert torch.allclose(wrong.sqrt_one_minus_alphas_cumprod, torch.sqrt(1 - SCHED.alpha_bar(t) ** 2))
    ref = samplers.ddpm(MODEL, X_T, SCHED, SCHED.timesteps(SCHED.T), generator=gen())
    assert maxdiff(ec.seed003_ddpm(MODEL, X_T, right, gen()), ref) < 1e-11
    assert maxdiff(ec.seed003_ddpm(MODEL, X_T, wrong, gen()), ref) > 1e-3


@pytest.mark.parametrize("k", [0, 7, 59])
def test_seed003_ddim_step_is_one_ddpm_step(k):
    arrays = ec.seed003_arrays(SCHED, as_written=False)
    z = torch.randn(X_T.shape, generator=gen(3), dtype=F64)
    step = ec.seed003_ddim_step(MODEL, X_T, k, arrays, z)
    ts = torch.tensor([k + 1.0, float(k)], dtype=F64)
    assert maxdiff(step, samplers.ddpm(MODEL, X_T, SCHED, ts, generator=gen(3))) < 1e-12


def test_seed003_ddim_is_ddpm_on_the_full_grid():
    arrays = ec.seed003_arrays(SCHED, as_written=False)
    ref = samplers.ddpm(MODEL, X_T, SCHED, SCHED.timesteps(SCHED.T), generator=gen(4))
    assert maxdiff(ec.seed003_ddim(MODEL, X_T, arrays, generator=gen(4)), ref) < 1e-11


def test_seed002_reverse_sde_is_euler_maruyama_and_noise_switch():
    ts = SCHED.timesteps(8, "logsnr", t_start=60.0, t_end=1.0)
    ref = sde.reverse_sde_euler_maruyama(MODEL, X_T, SCHED, ts, generator=gen(5))
    assert maxdiff(ec.seed002_reverse_sde(MODEL, X_T, SCHED, ts, generator=gen(5)), ref) < 1e-12
    quiet = ec.seed002_reverse_sde(MODEL, X_T, SCHED, ts, noise=False)
    one = ec.seed002_reverse_sde(MODEL, X_T, SCHED, ts[:2], noise=False)
    assert maxdiff(one, ec.seed002_reverse_sde(MODEL, X_T, SCHED, ts[:2], generator=gen(5))) == 0
    assert maxdiff(quiet, ref) > 1e-3  # the noise of the inner steps is dropped
    with pytest.raises(TypeError, match="noise"):
        ec.seed002_reverse_sde(MODEL, X_T, SCHED, ts, noise=1)


RING, VP = toy.mixture_2d(), LinearVP()
RING_MODEL = RING.eps_model(VP)


def test_multistep_pp3_full_weight_is_diffnb_3m_and_half_weight_is_not():
    x = torch.randn(16, 2, generator=gen(4), dtype=F64)
    ts = VP.timesteps(12, "logsnr", t_end=1e-3)
    ref = samplers.dpm_solver_pp(RING_MODEL, x, VP, ts, order=3, method="multistep")
    assert maxdiff(ec.multistep_pp3(RING_MODEL, x, VP, ts, d2_weight=1.0), ref) < 1e-12
    assert maxdiff(ec.multistep_pp3(RING_MODEL, x, VP, ts, d2_weight=0.5), ref) > 1e-6


def test_multistep_pp3_orders_two_and_three():
    """On the ring (Gaussian data superconverge: the full weight shows order 4 there)."""
    model, x = RING_MODEL, torch.randn(16, 2, generator=gen(5), dtype=F64)
    ref = sde.reference_ode_solve(model, x, VP, 1.0, 1e-3)
    ns = [160, 320, 640]
    order = {}
    for w in (0.5, 1.0):
        errs = [metrics.rms_error(ec.multistep_pp3(model, x, VP, VP.timesteps(n, "logsnr", t_end=1e-3), w), ref)
                for n in ns]
        order[w] = metrics.fit_order(ns, errs)
    assert abs(order[0.5] - 2) < 0.3 and abs(order[1.0] - 3) < 0.3, order


def test_multistep_pp3_weights_on_a_closed_form_problem():
    """Data prediction cos(lambda): the solution is a closed-form integral; w = 1/2 converges at
    order 2, w = 1 at order 3 (the cosine is not a polynomial, so nothing superconverges)."""
    from diffnb.conventions import cosine_data_problem

    model, exact = cosine_data_problem(VP)
    t_a, t_b = float(VP.t_of_log_snr(-3.0)), float(VP.t_of_log_snr(3.0))
    x = torch.full((1, 1), 0.3, dtype=F64)
    ns, errs = [40, 80, 160], {0.5: [], 1.0: []}
    for n in ns:
        ts = VP.t_of_log_snr(torch.linspace(-3.0, 3.0, n + 1, dtype=F64))
        ts[0], ts[-1] = t_a, t_b
        for w in errs:
            errs[w].append(abs(float(ec.multistep_pp3(model, x, VP, ts, w)) - exact(0.3, t_a, t_b)))
    assert abs(metrics.fit_order(ns, errs[0.5]) - 2) < 0.3
    assert abs(metrics.fit_order(ns, errs[1.0]) - 3) < 0.3


def test_split_w1():
    x = MIX.sample(400, generator=gen(6))
    mean, half, values = ec.split_w1(x, MIX, groups=4)
    assert len(values) == 4 and math.isclose(mean, sum(values) / 4)
    assert math.isclose(half, 2 * torch.tensor(values, dtype=F64).std().item() / 2)
    with pytest.raises(ValueError, match="groups"):
        ec.split_w1(x, MIX, groups=3)
    with pytest.raises(ValueError, match="groups"):
        ec.split_w1(x, MIX, groups=1)


def test_certify():
    a, b = sp.symbols("a b", positive=True)
    v = ec.certify("X", a - b, (a + b) ** 2 - a**2 - 2 * a * b - b**2, {a: 1, b: sp.Rational(1, 3)})
    assert v.value == sp.Rational(2, 3) and r"\frac{2}{3}" in v._repr_latex_()
    with pytest.raises(ValueError):  # the note's residual vanishes at the point: no certificate
        ec.certify("X", a - b, 0 * a, {a: 1, b: 1})
    with pytest.raises(AssertionError, match="not proved zero"):
        ec.certify("X", a - b, a - b, {a: 1, b: 2})
    with pytest.raises(TypeError):  # inexact point
        ec.certify("X", a - b, 0 * a, {a: 1.0, b: 2})
    assert ec.certify("X", a, [0 * a, b - b], {a: 2}).value == 2  # a list of corrected residuals
    f, r = sp.Function("f"), sp.Symbol("r")
    lam = ec.certify("X", f(a), 0 * a, {f: sp.Lambda(r, r + 1), a: 1})
    assert "f{\\left(r \\right)} = r + 1" in lam._repr_latex_()
    # Displayed over lines that fit a text column: the value, the point four coordinates a line, the
    # corrected residual.
    seven = {a: 1, b: 0, **{sp.Symbol(f"c{i}"): i for i in range(5)}}
    text = ec.certify("X", a - b, 0 * a, seven)._repr_latex_()
    assert text.startswith(r"$\begin{aligned}") and text.count(r" \\ ") == 3
    assert r"c_{1} = 1, \\ " in text and r"c_{4} = 4; \\ " in text
    assert repr(ec.certify("X", a - b, 0 * a, seven)).splitlines() == [
        "X: note's residual 1 != 0",
        "  at a = 1, b = 0, c0 = 0, c1 = 1, c2 = 2, c3 = 3, c4 = 4",
        "  corrected: proved zero"]
    long = {sp.Symbol(f"c{i}" * 12): i for i in range(5)}  # text lines stay within 75
    lines = repr(ec.certify("X", a, 0 * a, {a: 1, **long})).splitlines()
    assert len(lines) == 5 and max(map(len, lines)) <= 75
    assert lines[1].endswith(",") and lines[2].startswith("     c2")


def test_bad_inputs():
    with pytest.raises(TypeError, match="as_written"):
        ec.seed000_ddpm(MODEL, X_T, SCHED, as_written="yes")
    with pytest.raises(TypeError, match="schedule"):
        ec.seed000_ddpm(MODEL, X_T, VP)
    with pytest.raises(TypeError, match="schedule"):
        ec.seed003_arrays(VP)
    with pytest.raises(TypeError, match="d2_weight"):
        ec.multistep_pp3(RING_MODEL, torch.zeros(2, 2, dtype=F64), VP, VP.timesteps(4), d2_weight=True)
    with pytest.raises(ValueError, match="positive sigma"):
        ec.multistep_pp3(MODEL, X_T[:2], SCHED, torch.tensor([60.0, 30.0, 0.0], dtype=F64))


# --- bad input is refused by name ------------------------------------------------------------------
def _bad_errata_calls():
    arrays = ec.seed003_arrays(SCHED, as_written=False)
    x = X_T[:4]
    a = sp.Symbol("a", positive=True)
    return [
        (lambda: ec.seed003_ddim_step(None, x, 3, arrays, x), TypeError, "model must be callable"),
        (lambda: ec.seed003_ddim_step(MODEL, "x", 3, arrays, x), TypeError, "x must be a torch.Tensor"),
        (lambda: ec.seed003_ddim_step(MODEL, x, 3.0, arrays, x), TypeError, "k must be an int"),
        (lambda: ec.seed003_ddim_step(MODEL, x, 60, arrays, x), ValueError, "k must lie in [0, 59]"),
        (lambda: ec.seed003_ddim_step(MODEL, x, 3, SCHED, x), TypeError, "arrays must be the namespace made by seed003_arrays"),
        (lambda: ec.seed003_ddim_step(MODEL, x, 3, arrays, x[:2]), ValueError, "z must have x's shape"),
        (lambda: ec.seed003_ddim_step(MODEL, x, 3, arrays, x * math.nan), ValueError, "z must be finite"),
        (lambda: ec.seed003_ddim_step(MODEL, x, 3, arrays, x, eta=math.nan), ValueError, "eta must be finite"),
        (lambda: ec.seed003_ddim(MODEL, X_T, None), TypeError, "arrays must be the namespace"),
        (lambda: ec.seed003_ddim(MODEL, X_T, arrays, eta=-1.0), ValueError, "eta must be finite and >= 0"),
        (lambda: ec.seed003_ddpm(MODEL, X_T, "arrays"), TypeError, "arrays must be the namespace"),
        (lambda: ec.split_w1(None, MIX), TypeError, "samples must be a torch.Tensor"),
        (lambda: ec.split_w1(X_T, "mix"), TypeError, "mixture must be a toy.GaussianMixture"),
        (lambda: ec.split_w1(X_T, toy.mixture_2d()), ValueError, "mixture must be 1-D"),
        (lambda: ec.Verdict(None, sp.Integer(1), {}), TypeError, "label must be a str"),
        (lambda: ec.Verdict("E", "1", {}), TypeError, "value must be a SymPy expression"),
        (lambda: ec.Verdict("E", sp.Integer(1), [a]), TypeError, "point must be a dict"),
        (lambda: ec.certify(1, a - 1, a - a, {a: 2}), TypeError, "label must be a str"),
        (lambda: ec.certify("E", "a - 1", a - a, {a: 2}), TypeError, "wrong must be a SymPy expression"),
        (lambda: ec.certify("E", a - 1, [a - a, None], {a: 2}), TypeError, "right must be a SymPy expression"),
        (lambda: ec.certify("E", a - 1, a - a, None), TypeError, "point must be a dict"),
        (lambda: ec.certify("E", a - 1, a - a, {a: 2}, prove="yes"), TypeError, "prove must be callable"),
        (lambda: ec.seed001_ddim(MODEL, X_T, "s", SCHED.timesteps(5)), TypeError, "schedule must be a diffnb"),
        (lambda: ec.seed001_ddim(MODEL, X_T, SCHED, SCHED.timesteps(5), eta=math.nan), ValueError, "eta must be finite"),
        (lambda: ec.seed002_reverse_sde(None, X_T, SCHED, SCHED.timesteps(5)), TypeError, "model must be callable"),
        (lambda: ec.seed000_ddpm("m", X_T, SCHED), TypeError, "model must be callable"),
    ]


@pytest.mark.parametrize("k", range(len(_bad_errata_calls())))
def test_bad_input_raises_naming_the_argument(k):
    call, error, message = _bad_errata_calls()[k]
    with pytest.raises(error, match=re.escape(message)):
        call()


def test_seed003_ddim_is_its_checked_step_applied_in_turn():
    arrays = ec.seed003_arrays(SCHED, as_written=False)
    g = torch.Generator().manual_seed(5)
    x = X_T
    for k in range(len(arrays.alphas) - 1, -1, -1):
        x = ec.seed003_ddim_step(MODEL, x, k, arrays, torch.randn(X_T.shape, generator=g, dtype=F64), 0.5)
    y = ec.seed003_ddim(MODEL, X_T, arrays, 0.5, generator=torch.Generator().manual_seed(5))
    assert torch.equal(x, y)
    verdict = ec.certify("E", sp.Symbol("a") - 1, sp.Integer(0), {sp.Symbol("a"): 2})
    assert verdict.value == 1 and verdict.label == "E"
