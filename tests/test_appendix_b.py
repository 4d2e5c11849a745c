"""diffnb.appendix_b: the third-order multistep update with the second difference weighted by c."""

import pytest
import torch

from diffnb import appendix_b as ab
from diffnb import metrics, toy
from diffnb.samplers import dpm_solver_pp
from diffnb.schedules import LinearVP

F64 = torch.float64
S = LinearVP()
MODEL = toy.mixture_2d().eps_model(S)
X = torch.randn(16, 2, generator=torch.Generator().manual_seed(0), dtype=F64)


def test_full_weight_is_dpm_solver_pp_3m():
    ts = S.timesteps(12, "logsnr", t_end=1e-3)
    ref = dpm_solver_pp(MODEL, X, S, ts, order=3, method="multistep")
    assert float((ab.dpm_solver_pp_3m(MODEL, X, S, ts, 2.0) - ref).abs().max()) < 1e-12


def test_half_weight_is_second_order_and_full_third():
    from diffnb.conventions import cosine_data_problem
    model, exact = cosine_data_problem(S)
    t_a, t_b = float(S.t_of_log_snr(-3.0)), float(S.t_of_log_snr(3.0))
    x = torch.full((1, 1), 0.3, dtype=F64)
    ns, errs = [40, 80, 160], {1.0: [], 2.0: []}
    for n in ns:
        ts = S.t_of_log_snr(torch.linspace(-3.0, 3.0, n + 1, dtype=F64))
        ts[0], ts[-1] = t_a, t_b
        for c in errs:
            errs[c].append(abs(float(ab.dpm_solver_pp_3m(model, x, S, ts, c)) - exact(0.3, t_a, t_b)))
    assert abs(metrics.fit_order(ns, errs[1.0]) - 2) < 0.3
    assert abs(metrics.fit_order(ns, errs[2.0]) - 3) < 0.3


def test_refuses_a_grid_ending_at_sigma_zero():
    from diffnb.schedules import DiscreteVP
    s = DiscreteVP.linear()
    with pytest.raises(ValueError, match="positive sigma"):
        ab.dpm_solver_pp_3m(toy.mixture_2d().eps_model(s), X, s, torch.tensor([1000.0, 500.0, 0.0], dtype=F64))
