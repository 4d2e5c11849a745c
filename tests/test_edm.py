"""Euler, Heun, EDM's stochastic sampler, naive Euler in t and the flow-matching Euler sampler (diffnb.edm).

The checks are identities (Euler is DDIM; churn = 0 is Heun; on VE and flow matching naive Euler is
DDIM), single steps written from the paper's formulas, the model-call counts, schedule invariance in
(rho, y) and convergence orders against the reference ODE solve."""

import math

import pytest
import torch
from hypothesis import given, strategies as st

from diffnb import metrics, toy
from diffnb.edm import edm_sampler, euler, flow_euler, heun, heun_nfe, naive_euler
from diffnb.forward import prediction_from_eps
from diffnb.paths_demo import exact_velocity, matched_grid
from diffnb.samplers import ddim
from diffnb.schedules import VE, CosineVP, DiscreteVP, FlowMatching, LinearVP
from diffnb.sde import reference_ode_solve

F64 = torch.float64
SCHEDULES = {"ddpm": DiscreteVP.linear(), "linear_vp": LinearVP(), "cosine_vp": CosineVP(), "ve": VE(),
             "flow": FlowMatching()}


def x_T(n=32, dim=2, seed=0, scale=1.0):
    return scale * torch.randn(n, dim, generator=torch.Generator().manual_seed(seed), dtype=F64)


def grid(s, n, to_zero=False):
    """n intervals from log-SNR -4 to 5 on schedule s (then to sigma = 0 if asked)."""
    lam = torch.linspace(-4.0, 5.0, n + (0 if to_zero else 1), dtype=F64)
    ts = s.t_of_log_snr(lam)
    return torch.cat([ts, ts.new_full((1,), s.t_min)]) if to_zero else ts


# --- identities --------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", list(SCHEDULES))
@pytest.mark.parametrize("to_zero", [False, True])
def test_euler_is_ddim(name, to_zero):
    s = SCHEDULES[name]
    model = toy.mixture_2d().eps_model(s)
    ts = grid(s, 12, to_zero)
    x = x_T() * s.alpha(ts[0]) * math.exp(4.0)  # y_T of the scale of rho_T
    a, b = euler(model, x, s, ts), ddim(model, x, s, ts)
    assert torch.allclose(a, b, rtol=1e-12, atol=1e-12)


@given(st.lists(st.floats(min_value=-5, max_value=6), min_size=2, max_size=8, unique=True))
def test_euler_is_ddim_on_random_grids(lams):
    s = LinearVP()
    lam = torch.tensor(sorted(lams), dtype=F64)
    ts = s.t_of_log_snr(lam)
    if not bool((ts[1:] < ts[:-1]).all()):
        return
    model = toy.seed_mixture_1d().eps_model(s)
    x = x_T(dim=1)
    assert torch.allclose(euler(model, x, s, ts), ddim(model, x, s, ts), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("name", ["ve", "flow"])
def test_naive_euler_in_t_is_ddim_on_ve_and_flow_matching(name):
    s = SCHEDULES[name]
    model = toy.mixture_2d().eps_model(s)
    ts = grid(s, 10, to_zero=True)
    x = x_T() * s.sigma(ts[0])
    assert torch.allclose(naive_euler(model, x, s, ts), ddim(model, x, s, ts), rtol=1e-11, atol=1e-12)


def test_naive_euler_in_t_is_not_ddim_on_vp():
    s = LinearVP()
    model = toy.mixture_2d().eps_model(s)
    ts = grid(s, 10)
    x = x_T()
    assert float((naive_euler(model, x, s, ts) - ddim(model, x, s, ts)).abs().max()) > 1e-3


def test_flow_euler_from_t_equal_1_is_ddim_after_its_first_step():
    """The flow-matching Euler sampler with the exact velocity starts at t = 1 (where DDIM cannot) and
    from there on is DDIM on the same grid."""
    s, mix = FlowMatching(), toy.mixture_2d()
    ts = s.timesteps(8, shift=3.0)
    x1 = x_T()
    states = []
    out = flow_euler(exact_velocity(mix, s), x1, s, ts, callback=lambda i: states.append(i["x"]))
    # First step by hand: u(x, 1) = sigma' eps + alpha' x0_hat = x - E[x0].
    assert torch.allclose(states[0], x1 + (ts[1] - ts[0]) * (x1 - mix.mean()), rtol=1e-13, atol=1e-13)
    rest = ddim(mix.eps_model(s), states[0], s, ts[1:])
    assert torch.allclose(out, rest, rtol=1e-11, atol=1e-12)
    with pytest.raises(ValueError, match="ts"):
        ddim(mix.eps_model(s), x1, s, ts)


def test_flow_euler_with_converted_eps_model_is_naive_euler():
    s = LinearVP()
    eps = toy.mixture_2d().eps_model(s)
    velocity = lambda x, t: prediction_from_eps(eps(x, t), x, s, t, "velocity")  # noqa: E731
    ts = grid(s, 9)
    assert torch.allclose(flow_euler(velocity, x_T(), s, ts), naive_euler(eps, x_T(), s, ts), rtol=1e-12,
                          atol=1e-12)


@pytest.mark.parametrize("to_zero", [False, True])
def test_edm_sampler_with_churn_0_is_heun(to_zero):
    s = VE()
    model = toy.mixture_2d().eps_model(s)
    ts = grid(s, 7, to_zero)
    x = x_T(scale=float(ts[0]))
    ref = heun(model, x, s, ts)
    assert torch.equal(edm_sampler(model, x, s, ts), ref)
    assert torch.equal(edm_sampler(model, x, s, ts, churn=0.0, generator=torch.Generator().manual_seed(1)), ref)
    # Churn outside [s_tmin, s_tmax] everywhere on the grid is no churn.
    assert torch.equal(edm_sampler(model, x, s, ts, churn=40.0, s_tmin=1e4, s_tmax=2e4), ref)


@pytest.mark.parametrize("name", ["ve", "linear_vp", "flow"])
def test_heun_gives_the_same_y_on_every_path(name):
    s, ve = SCHEDULES[name], VE(sigma_min=1e-3, sigma_max=200.0)
    lam = torch.linspace(-4.0, 5.0, 9, dtype=F64)
    t_s, t_ve = s.t_of_log_snr(lam), ve.t_of_log_snr(lam)
    y = x_T(scale=math.exp(4.0))
    a = heun(toy.mixture_2d().eps_model(s), y * s.alpha(t_s[0]), s, t_s) / s.alpha(t_s[-1])
    b = heun(toy.mixture_2d().eps_model(ve), y, ve, t_ve)
    assert torch.allclose(a, b, rtol=1e-12, atol=1e-12)


# --- single steps from the papers' formulas -------------------------------------------------------
def test_one_heun_step_is_algorithm_1_on_ve():
    """EDM Algorithm 1 with sigma(t) = t, s(t) = 1: d_i = (x_i - D(x_i; t_i)) / t_i, Euler to t_{i+1},
    then the trapezoidal rule with d'_i at (x_{i+1}, t_{i+1})."""
    s, mix = VE(), toy.mixture_2d()
    D = lambda x, t: mix.x0_hat(x, 1.0, t)  # noqa: E731  the ideal denoiser
    t0, t1 = 3.0, 1.2
    x0 = x_T(scale=t0)
    d = (x0 - D(x0, t0)) / t0
    x1 = x0 + (t1 - t0) * d
    d_prime = (x1 - D(x1, t1)) / t1
    by_hand = x0 + (t1 - t0) * (0.5 * d + 0.5 * d_prime)
    ts = torch.tensor([t0, t1], dtype=F64)
    assert torch.allclose(heun(mix.eps_model(s), x0, s, ts), by_hand, rtol=1e-13, atol=1e-13)
    # ... and a last interval to t = 0 is the Euler step alone: x = D(x; t), one model call.
    infos = []
    out = heun(mix.eps_model(s), x0, s, torch.tensor([t0, 0.0], dtype=F64), callback=infos.append)
    assert torch.allclose(out, D(x0, t0), rtol=1e-13, atol=1e-13) and infos[-1]["nfe"] == 1


def test_one_stochastic_step_is_algorithm_2_on_ve():
    """gamma = min(S_churn / N, sqrt(2) - 1); t_hat = (1 + gamma) t; x_hat = x + sqrt(t_hat^2 - t^2) S_noise z;
    then the Heun step from (x_hat, t_hat) to t_{i+1}."""
    s, mix = VE(), toy.mixture_2d()
    D = lambda x, t: mix.x0_hat(x, 1.0, t)  # noqa: E731
    t0, t1, churn, s_noise = 3.0, 1.2, 0.3, 1.007
    x0 = x_T(scale=t0)
    gamma = min(churn / 1, math.sqrt(2) - 1)
    t_hat = t0 + gamma * t0
    z = torch.randn(x0.shape, generator=torch.Generator().manual_seed(5), dtype=F64)
    x_hat = x0 + math.sqrt(t_hat**2 - t0**2) * s_noise * z
    d = (x_hat - D(x_hat, t_hat)) / t_hat
    x1 = x_hat + (t1 - t_hat) * d
    by_hand = x_hat + (t1 - t_hat) * (0.5 * d + 0.5 * (x1 - D(x1, t1)) / t1)
    infos = []
    out = edm_sampler(mix.eps_model(s), x0, s, torch.tensor([t0, t1], dtype=F64), churn=churn, s_noise=s_noise,
                      generator=torch.Generator().manual_seed(5), callback=infos.append)
    assert torch.allclose(out, by_hand, rtol=1e-12, atol=1e-12)
    assert math.isclose(float(infos[0]["t_hat"]), t_hat, rel_tol=1e-12)


def test_gamma_saturates_at_sqrt2_minus_1_and_respects_s_tmin_s_tmax():
    s = VE()
    model = toy.seed_mixture_1d().eps_model(s)
    ts = torch.tensor([40.0, 10.0, 2.0, 0.5, 0.1, 0.0], dtype=F64)
    infos = []
    edm_sampler(model, x_T(dim=1, scale=40.0), s, ts, churn=100.0, s_tmin=0.4, s_tmax=20.0,
                generator=torch.Generator().manual_seed(0), callback=infos.append)
    ratio = [float(i["t_hat"] / i["t_prev"]) for i in infos]
    expected = [1.0, math.sqrt(2), math.sqrt(2), math.sqrt(2), 1.0]  # 40 and 0.1 lie outside [0.4, 20]
    assert all(math.isclose(a, b, rel_tol=1e-12) for a, b in zip(ratio, expected))


# --- model calls, callback, dtype ---------------------------------------------------------------------
@pytest.mark.parametrize("to_zero", [False, True])
def test_heun_model_calls(to_zero):
    s = LinearVP()
    calls = []
    base = toy.mixture_2d().eps_model(s)

    def model(x, t):
        calls.append(float(t[0]))
        return base(x, t)

    ts = grid(s, 6, to_zero)
    infos = []
    heun(model, x_T(), s, ts, callback=infos.append)
    assert len(calls) == heun_nfe(6, to_zero) == infos[-1]["nfe"] == (11 if to_zero else 12)
    assert set(infos[0]) >= {"i", "t", "t_prev", "x", "x0_hat", "eps_hat", "nfe"}


def test_callback_x0_hat_and_dtype():
    s = LinearVP()
    model = toy.mixture_2d().eps_model(s)
    ts = grid(s, 5, to_zero=True)
    for fn in (euler, heun, edm_sampler, naive_euler):
        infos = []
        out = fn(model, x_T(), s, ts, callback=infos.append)
        assert out.dtype == F64 and len(infos) == 5
        # x0_hat is (x - sigma eps)/alpha of the first prediction of the last interval: the output of a
        # last Euler step to sigma = 0.
        if fn is not naive_euler:
            assert torch.allclose(out, infos[-1]["x0_hat"], rtol=1e-12, atol=1e-12)
    x32 = x_T().float()
    assert heun(toy.mixture_2d().eps_model(s), x32.double(), s, ts).dtype == F64


# --- convergence -----------------------------------------------------------------------------------------
@pytest.mark.parametrize("sampler, order", [("euler", 1), ("heun", 2), ("naive_euler", 1)])
def test_convergence_order(sampler, order):
    s, mix = LinearVP(), toy.mixture_2d()
    model = mix.eps_model(s)
    fn = {"euler": euler, "heun": heun, "naive_euler": naive_euler}[sampler]
    t0, t1 = float(s.t_of_log_snr(torch.tensor(-4.0, dtype=F64))), float(s.t_of_log_snr(torch.tensor(5.0, dtype=F64)))
    x = x_T(16)
    ref = reference_ode_solve(model, x, s, t0, t1)
    steps = [80, 160, 320]
    errs = [metrics.rms_error(fn(model, x, s, s.timesteps(n, "logsnr", t_start=t0, t_end=t1)), ref) for n in steps]
    assert abs(metrics.fit_order(steps, errs) - order) < 0.15


def test_stochastic_sampler_samples_the_data_with_many_steps(gaussian_data):
    """EDM's sampler with churn is a consistent sampler of the data distribution (N(0.3, 0.5^2) here):
    with 60 intervals its samples have the data's mean and standard deviation to Monte Carlo accuracy."""
    s = VE(sigma_max=40.0)
    data = gaussian_data(s)
    ts = torch.cat([s.timesteps(59, "karras"), torch.zeros(1, dtype=F64)])
    x = x_T(20000, dim=1, scale=40.0, seed=3)
    out = edm_sampler(data.model, x, s, ts, churn=30.0, s_tmin=0.05, s_tmax=20.0,
                      generator=torch.Generator().manual_seed(4))
    assert abs(float(out.mean()) - 0.3) < 4 * 0.5 / math.sqrt(20000) + 5e-3
    assert abs(float(out.std()) - 0.5) < 4 * 0.5 / math.sqrt(2 * 20000) + 5e-3
    deterministic = heun(data.model, x, s, ts)
    assert float((out - deterministic).abs().mean()) > 0.05  # the churn really changed the paths


# --- bad input ---------------------------------------------------------------------------------------------
def test_bad_input_is_named():
    s = VE()
    model = toy.seed_mixture_1d().eps_model(s)
    ts = grid(s, 4, to_zero=True)
    x = x_T(dim=1, scale=50.0)
    with pytest.raises(ValueError, match="churn"):
        edm_sampler(model, x, s, ts, churn=-1.0)
    with pytest.raises(TypeError, match="churn"):
        edm_sampler(model, x, s, ts, churn="40")
    with pytest.raises(ValueError, match="s_noise"):
        edm_sampler(model, x, s, ts, s_noise=-0.5)
    with pytest.raises(ValueError, match="s_tmin"):
        edm_sampler(model, x, s, ts, s_tmin=2.0, s_tmax=1.0)
    with pytest.raises(TypeError, match="generator"):
        edm_sampler(model, x, s, ts, churn=1.0, generator=3)
    with pytest.raises(ValueError, match="churn"):  # rho_hat beyond sigma_max
        edm_sampler(model, x, s, s.timesteps(4), churn=40.0)
    for fn in (euler, heun, edm_sampler, naive_euler):
        with pytest.raises(TypeError, match="schedule"):
            fn(model, x, "VE", ts)
        with pytest.raises(ValueError, match="ts"):
            fn(model, x, s, torch.tensor([100.0, 1.0], dtype=F64))  # outside [0, sigma_max]
        with pytest.raises(ValueError, match="ts"):
            fn(model, x, s, torch.tensor([1.0, 2.0], dtype=F64))  # not decreasing
    fm = FlowMatching()
    with pytest.raises(ValueError, match="ts"):  # alpha = 0 at t = 1: y = x/alpha undefined
        heun(toy.seed_mixture_1d().eps_model(fm), x, fm, fm.timesteps(4))


def test_matched_grid_maps_lambda_and_the_clean_end():
    vp, ve = LinearVP(), VE()
    ts = torch.tensor([80.0, 1.0, 0.002, 0.0], dtype=F64)
    out = matched_grid(ts, ve, vp)
    assert torch.allclose(vp.log_snr(out[:-1]), ve.log_snr(ts[:-1]), rtol=1e-12) and float(out[-1]) == 0.0


# --- the chapter's helpers (diffnb.paths_demo) -------------------------------------------------------------
def test_exact_velocity_is_the_converted_eps_and_finite_at_t_1():
    from diffnb import paths_demo as pdm

    fm, mix = FlowMatching(), toy.mixture_2d()
    x, t = x_T(), torch.full((32,), 0.37, dtype=F64)
    u = pdm.exact_velocity(mix, fm)(x, t)
    assert torch.allclose(u, prediction_from_eps(mix.eps_model(fm)(x, t), x, fm, t, "velocity"), rtol=1e-12)
    u1 = pdm.exact_velocity(mix, fm)(x, torch.ones(32, dtype=F64))
    assert torch.allclose(u1, x - mix.mean(), rtol=1e-13, atol=1e-13)  # eps = x, x0_hat = E[x0] at t = 1


def test_chord_deviation_and_the_projective_map():
    """A straight (rho, y) path is straight in flow matching's (t, x) too, and curved in VP's."""
    from diffnb import paths_demo as pdm

    lam = torch.linspace(-4.0, 5.0, 400, dtype=F64)
    rho = torch.exp(-lam)
    y = (0.3 + 1.7 * rho)[:, None, None]  # one straight path in (rho, y)
    for system in ("edm", FlowMatching()):
        assert float(pdm.chord_deviation(*pdm.coordinates(system, lam, y))) < 1e-12
    assert float(pdm.chord_deviation(*pdm.coordinates(LinearVP(), lam, y))) > 0.05


def test_dense_paths_are_the_ode_solution():
    from diffnb import paths_demo as pdm

    mix, s = toy.mixture_2d(), VE(sigma_min=math.exp(-5.0), sigma_max=math.exp(4.0))
    lam = torch.linspace(-4.0, 5.0, 801, dtype=F64)
    y = x_T(8, scale=math.exp(4.0))
    paths = pdm.dense_paths(mix, y, lam)
    ref = reference_ode_solve(mix.eps_model(s), y, s, s.t_max, s.sigma_min)
    assert paths.shape == (801, 8, 2) and torch.equal(paths[0], y)
    assert float((paths[-1] - ref).abs().max()) < 1e-6


def test_paired_ratio_and_crossing():
    from diffnb import paths_demo as pdm

    g = torch.Generator().manual_seed(0)
    base = torch.rand(400, generator=g, dtype=F64) + 0.5
    r, lo, hi = pdm.paired_ratio(4 * base, base)
    assert r == pytest.approx(2.0, rel=1e-12) and lo < 2.0 + 1e-12 and hi > 2.0 - 1e-12 and hi - lo < 1e-9
    r, lo, hi = pdm.paired_ratio(base * torch.rand(400, generator=g, dtype=F64), base)
    assert lo < r < hi < 1
    # errors halving per doubling of calls: the crossing of the level of the third budget is that budget
    sq = torch.stack([base * 4.0 ** -k for k in range(4)])
    n, lo, hi = pdm.crossing_nfe([10, 20, 40, 80], sq, base / 16)
    assert n == pytest.approx(40.0, rel=1e-9) and lo <= n <= hi
    assert pdm.crossing_nfe([10, 20], sq[:2], base / 1e6)[0] == math.inf
    with pytest.raises(ValueError, match="sq_a"):
        pdm.paired_ratio(base, base[:10])


def test_grid_to_zero():
    from diffnb import paths_demo as pdm

    ts = pdm.grid_to_zero(VE(), 5, "karras")
    assert len(ts) == 6 and float(ts[-1]) == 0.0 and math.isclose(float(ts[-2]), 0.002, rel_tol=1e-12)
    assert float(ts[0]) == 80.0


def test_rho_grid_and_t_of_rho_refuse_bad_input_by_name():
    from diffnb.edm import rho_grid, t_of_rho
    from diffnb.schedules import DiscreteVP

    s, like = DiscreteVP.linear(), torch.zeros(1, dtype=torch.float64)
    ts = torch.tensor([999.0, 500.0], dtype=torch.float64)
    for call, error, message in [
        (lambda: rho_grid(None, ts), TypeError, r"schedule must be a diffnb.schedules.GaussianPath"),
        (lambda: rho_grid(s, [999.0, 500.0]), TypeError, r"ts must be a 1-D torch.Tensor of times, got list"),
        (lambda: rho_grid(s, ts.long()), TypeError, r"ts must be a floating-point tensor"),
        (lambda: rho_grid(s, ts[:, None]), ValueError, r"ts must be 1-D and non-empty"),
        (lambda: rho_grid(s, torch.tensor([float("nan")], dtype=torch.float64)), ValueError, r"ts must be finite"),
        (lambda: rho_grid(s, torch.tensor([2000.0], dtype=torch.float64)), ValueError, r"ts must lie in"),
        (lambda: t_of_rho("x", 1.0, like), TypeError, r"schedule must be a diffnb.schedules.GaussianPath"),
        (lambda: t_of_rho(s, float("nan"), like), ValueError, r"rho must be positive and finite, got nan"),
        (lambda: t_of_rho(s, 0.0, like), ValueError, r"rho must be positive and finite"),
        (lambda: t_of_rho(s, None, like), TypeError, r"rho must be a number"),
        (lambda: t_of_rho(s, torch.ones(2, dtype=torch.float64), like), TypeError, r"rho must be a number or a one"),
        (lambda: t_of_rho(s, 1.0, None), TypeError, r"like must be a floating-point torch.Tensor"),
    ]:
        with pytest.raises(error, match=message):
            call()
    t = t_of_rho(s, torch.tensor(1.0, dtype=torch.float64), like)  # a 0-d tensor rho is a number
    assert abs(float(s.noise_to_signal(t)) - 1.0) < 1e-9 and t.dtype == like.dtype
