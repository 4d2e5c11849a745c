"""Tests of diffnb.sde_theory: each helper against an independent computation."""

import math
import re

import pytest
import sympy as sp
import torch

from diffnb import analytic_dpm, forward, samplers, sde, toy
from diffnb import sde_theory as th
from diffnb.schedules import DiscreteVP, LinearVP
from diffnb.symbolic import sde as ss

F64 = torch.float64
LINEAR = LinearVP(beta_0=0.1, beta_1=20.0)
DISC = DiscreteVP.linear()
MIX = toy.seed_mixture_1d()


def gen(seed):
    return torch.Generator().manual_seed(seed)


# --- symbolic ---------------------------------------------------------------------------------------
def test_reverse_kernel_gaussian_two_routes_agree_and_ddpm_is_short():
    k = th.reverse_kernel_gaussian()
    assert sp.simplify(k.joint_mean - k.mixed_mean) == 0
    assert sp.simplify(k.joint_var - k.mixed_var) == 0
    point = dict(zip(k.symbols, [0.6, 0.8, 0.9, 0.4, 0.3, 0.2, 1.1]))
    shortfall = float((k.joint_var - k.var).subs(point))
    assert shortfall > 0
    assert math.isclose(shortfall, float((k.c_0**2 * k.x0_var).subs(point)), rel_tol=1e-12)


def test_reverse_kernel_gaussian_matches_monte_carlo():
    """Var[x_s | x_t] of the formula against x_s drawn from the forward process and binned by x_t."""
    k = th.reverse_kernel_gaussian()
    a_s, s_s, a_ts, s_ts, s, m = 0.8, 0.6, 0.9, math.sqrt(1 - 0.81), 0.5, 0.3
    g = gen(0)
    n = 400_000
    x0 = m + s * torch.randn(n, generator=g, dtype=F64)
    xs = a_s * x0 + s_s * torch.randn(n, generator=g, dtype=F64)
    xt = a_ts * xs + s_ts * torch.randn(n, generator=g, dtype=F64)
    near = (xt - 0.4).abs() < 0.01
    values = dict(zip(k.symbols, [a_s, s_s, a_ts, s_ts, s, m, 0.4]))
    assert abs(float(xs[near].var()) - float(k.joint_var.subs(values))) < 0.01
    assert abs(float(xs[near].mean()) - float(k.joint_mean.subs(values))) < 0.01


def test_linearised_ddpm_step_gaps_start_at_dt_squared_and_match_numbers():
    S = ss.sde_symbols()
    lin = th.linearised_ddpm_step(S)
    for gap in lin.gaps.values():
        assert sp.simplify(gap.coeff(S.dt, 0)) == 0 and sp.simplify(gap.coeff(S.dt, 1)) == 0
    # DDPM's exact coefficients against the schedule class, on the linear VP schedule
    t, dt = 0.5, 0.01
    la = lambda v: sp.exp(-(0.1 * v + 19.9 * v**2 / 2) / 2)  # noqa: E731
    u = sp.Dummy("u")
    subs = {S.alpha.func: sp.Lambda(u, la(u)), S.sigma.func: sp.Lambda(u, sp.sqrt(1 - la(u) ** 2))}
    pull = lin.pairs["pull"][0]
    for fn, path in subs.items():
        pull = pull.replace(fn, path)
    value = float(pull.doit().subs({S.t: t, S.dt: dt}))
    _, c_0, _ = forward.posterior_coefficients(LINEAR, torch.tensor(t, dtype=F64), torch.tensor(t - dt, dtype=F64))
    assert math.isclose(value, float(c_0 / LINEAR.alpha(t - dt)), rel_tol=1e-10)


def test_amplification_is_the_slope_of_one_step(gaussian_data):
    data = gaussian_data(DISC, m=0.3, sd=0.05)
    ts = torch.tensor([500.0, 480.0], dtype=F64)
    x = torch.tensor([[0.1], [0.7]], dtype=F64)
    t = ts[0]
    f, g2 = sde.drift_diffusion(DISC, t)
    v = DISC.alpha(t) ** 2 * 0.05**2 + DISC.sigma(t) ** 2
    for eta in (0.0, 0.5, 1.0, 2.0):
        out = th.eta_reverse_sde(data.model, x, DISC, ts, eta)  # one step, the last: no noise
        slope = float((out[1] - out[0]) / (x[1] - x[0]))
        assert math.isclose(slope, float(th.amplification(f, g2, ts[0] - ts[1], v, eta)), rel_tol=1e-10)


def test_equations_and_plain():
    S = ss.sde_symbols()
    expr = th.plain(sp.diff(S.alpha, S.t) / S.alpha, S)
    assert expr.free_symbols == {sp.Symbol("alpha_t", positive=True), sp.Symbol(r"\dot{\alpha}_t", real=True)}
    math_ = th.equations(("f", expr), ("g", sp.Integer(2)))
    assert r"\qquad" in math_.data and math_.data.startswith("f = ")


# --- samplers ---------------------------------------------------------------------------------------
def test_eta_one_is_the_reverse_sde_and_eta_zero_is_euler_for_the_ode():
    model = MIX.eps_model(DISC)
    x = torch.randn(50, 1, generator=gen(1), dtype=F64)
    ts = DISC.timesteps(20, "logsnr", t_start=1000.0, t_end=1.0)
    ours = th.eta_reverse_sde(model, x, DISC, ts, 1.0, generator=gen(2))
    ref = sde.reverse_sde_euler_maruyama(model, x, DISC, ts, generator=gen(2))
    assert torch.equal(ours, ref)
    euler = x
    for t, s in zip(ts[:-1], ts[1:]):
        euler = euler - sde.probability_flow_rhs(model, euler, t, DISC) * (t - s)
    assert torch.allclose(th.eta_reverse_sde(model, x, DISC, ts, 0.0), euler, atol=1e-12)


def test_eta_family_members_sample_the_same_law():
    model = MIX.eps_model(LINEAR)
    ts = LINEAR.timesteps(100, "logsnr", t_start=1.0, t_end=1e-3)
    q = sde.noised_mixture(MIX, LINEAR, 1e-3)
    x = torch.randn(4000, 1, generator=gen(3), dtype=F64)
    for eta in (0.0, 1.5):
        out = th.eta_reverse_sde(model, x, LINEAR, ts, eta, generator=gen(4))
        assert sde.ks_distance(out, q) < 1.95 / math.sqrt(4000)


def test_eta_reverse_sde_callback_and_bad_input():
    model = MIX.eps_model(DISC)
    x = torch.zeros(4, 1, dtype=F64)
    ts = DISC.timesteps(3)
    seen = []
    th.eta_reverse_sde(model, x, DISC, ts, 0.5, generator=gen(0), callback=seen.append)
    assert [info["i"] for info in seen] == [0, 1, 2] and {"t", "x", "x0_hat"} <= set(seen[0])
    with pytest.raises(ValueError, match="eta"):
        th.eta_reverse_sde(model, x, DISC, ts, -1.0)
    with pytest.raises(TypeError, match="eta"):
        th.eta_reverse_sde(model, x, DISC, ts, True)
    with pytest.raises(TypeError, match="schedule"):
        th.eta_reverse_sde(model, x, "DDPM", ts, 1.0)


def test_langevin_step_formula_and_groups():
    model = MIX.eps_model(DISC)
    t = torch.tensor(300.0, dtype=F64)
    x = torch.randn(6, 1, generator=gen(5), dtype=F64)
    out = th.langevin_step(model, x, DISC, t, snr=0.3, generator=gen(6), groups=2)
    z = torch.randn(6, 1, generator=gen(6), dtype=F64)
    score = MIX.score(x, DISC.alpha(t), DISC.sigma(t))
    for rows in (slice(0, 3), slice(3, 6)):
        rms = lambda v: v[rows].pow(2).mean().sqrt()  # noqa: E731
        e = 2 * (0.3 * rms(z) / rms(score)) ** 2
        assert torch.allclose(out[rows], x[rows] + e * score[rows] + torch.sqrt(2 * e) * z[rows], atol=1e-12)
    assert torch.equal(th.langevin_step(model, x, DISC, t, snr=0.0, generator=gen(6)), x)
    with pytest.raises(ValueError, match="groups"):
        th.langevin_step(model, x, DISC, t, groups=4)
    with pytest.raises(ValueError, match="snr"):
        th.langevin_step(model, x, DISC, t, snr=-1.0)


def test_langevin_keeps_the_stationary_law():
    """Langevin steps with the exact score of q_t leave samples of q_t distributed as q_t (small e)."""
    model = MIX.eps_model(DISC)
    t = torch.tensor(400.0, dtype=F64)
    q = sde.noised_mixture(MIX, DISC, t)
    x = q.sample(4000, generator=gen(7))
    g = gen(8)
    for _ in range(20):
        x = th.langevin_step(model, x, DISC, t, snr=0.1, generator=g)
    assert sde.ks_distance(x, q) < 1.95 / math.sqrt(4000)


def test_predictor_corrector_without_corrector_is_the_predictor():
    model = MIX.eps_model(DISC)
    x = torch.randn(64, 1, generator=gen(9), dtype=F64)
    ts = DISC.timesteps(10, "logsnr", t_start=1000.0, t_end=1.0)
    em = th.predictor_corrector(model, x, DISC, ts, "em", n_corrector=0, generator=gen(10))
    assert torch.allclose(em, sde.reverse_sde_euler_maruyama(model, x, DISC, ts, generator=gen(10)), atol=1e-12)
    dd = th.predictor_corrector(model, x, DISC, ts, "ddpm", n_corrector=0, generator=gen(10))
    assert torch.allclose(dd, samplers.ddpm(model, x, DISC, ts, generator=gen(10)), atol=1e-12)
    with pytest.raises(ValueError, match="predictor"):
        th.predictor_corrector(model, x, DISC, ts, "heun")
    with pytest.raises(ValueError, match="n_corrector"):
        th.predictor_corrector(model, x, DISC, ts, n_corrector=-1)


# --- exact quantities -------------------------------------------------------------------------------
def test_sample_x0_posterior_moments():
    alpha, sigma = DISC.alpha(200.0), DISC.sigma(200.0)
    x = torch.full((200_000, 1), 0.35, dtype=F64)
    draws = th.sample_x0_posterior(MIX, x, alpha, sigma, generator=gen(11))
    mean = float(MIX.x0_hat(x[:1], alpha, sigma))
    var = float(analytic_dpm.x0_variance(MIX, x[:1], alpha, sigma))
    se = math.sqrt(var / 200_000)
    assert abs(float(draws.mean()) - mean) < 5 * se
    assert abs(float(draws.var()) / var - 1) < 0.02


def test_reverse_kernel_moments_against_exact_draws():
    t, s = torch.tensor(500.0, dtype=F64), torch.tensor(450.0, dtype=F64)
    x = torch.full((200_000, 1), -0.2, dtype=F64)
    k = th.reverse_kernel_moments(MIX, DISC, x[:1], t, s)
    draws = th.reverse_step("exact", MIX, DISC, x, t, s, generator=gen(12))
    mean, var = (float(v) for v in k["exact"])
    assert abs(float(draws.mean()) - mean) < 5 * math.sqrt(var / 200_000)
    assert abs(float(draws.var()) / var - 1) < 0.02
    assert torch.allclose(k["ddpm"][0], k["exact"][0]) and float(k["ddpm"][1]) < var
    f, g2 = sde.drift_diffusion(DISC, t)
    eps = MIX.eps(x[:1], DISC.alpha(t), DISC.sigma(t))
    assert torch.allclose(k["em"][0], x[:1] - (f * x[:1] + g2 / DISC.sigma(t) * eps) * (t - s))
    assert math.isclose(float(k["em"][1]), float(g2 * (t - s)), rel_tol=1e-12)


def test_exact_jumps_sample_the_marginal_on_a_coarse_grid():
    ts = DISC.timesteps(5, "logsnr", t_start=1000.0, t_end=1.0)
    q_T = sde.noised_mixture(MIX, DISC, ts[0])
    x = q_T.sample(4000, generator=gen(13))
    g = gen(14)
    for i in range(5):
        x = th.reverse_step("exact", MIX, DISC, x, ts[i], ts[i + 1], g)
    assert sde.ks_distance(x, sde.noised_mixture(MIX, DISC, 1.0)) < 1.95 / math.sqrt(4000)
    with pytest.raises(ValueError, match="kind"):
        th.reverse_step("heun", MIX, DISC, x, ts[0], ts[1])


def test_error_attribution_shapes_and_floor():
    ts = DISC.timesteps(4, "logsnr", t_start=1000.0, t_end=1.0)
    x = torch.randn(2000, 1, generator=gen(15), dtype=F64)
    q_1 = sde.noised_mixture(MIX, DISC, 1.0)
    steps, full, exact = th.error_attribution("ddpm", MIX.eps_model(DISC), MIX, DISC, x, ts, q_1, gen(16))
    assert len(steps) == 4 and all(math.isfinite(w) for w in steps)
    assert exact < 0.02 < full  # four exact jumps are at the floor; four DDPM steps are not


# --- statistics and pictures ------------------------------------------------------------------------
def test_summary():
    values = [0.1, 0.3, 0.2, 0.4, 0.5]
    s = th.summary(values)
    v = torch.tensor(values, dtype=F64)
    assert math.isclose(s.mean, 0.3) and math.isclose(s.sd, float(v.std()))
    assert math.isclose(s.se, s.sd / math.sqrt(5)) and s.lo < s.mean < s.hi and s.n == 5
    with pytest.raises(ValueError, match="at least 2"):
        th.summary([1.0])


def test_density_map_is_the_noised_density():
    ts = torch.tensor([900.0, 100.0, 1.0], dtype=F64)
    xs = torch.linspace(-8, 8, 16001, dtype=F64)
    dens = th.density_map(MIX, DISC, ts, xs)
    assert dens.shape == (3, 16001)
    assert torch.allclose(torch.trapezoid(dens, xs), torch.ones(3, dtype=F64), atol=1e-6)
    q = sde.noised_mixture(MIX, DISC, ts[1])
    assert torch.allclose(dens[1], q.log_prob(xs[:, None]).exp())
    with pytest.raises(TypeError, match="1-D"):
        th.density_map(toy.mixture_2d(), DISC, ts, xs)


def test_eta_zero_is_the_catalogues_naive_euler():
    edm = pytest.importorskip("diffnb.edm")
    model = MIX.eps_model(LINEAR)
    x = torch.randn(50, 1, generator=gen(20), dtype=F64)
    ts = LINEAR.timesteps(30, "logsnr", t_start=1.0, t_end=1e-3)
    ours = th.eta_reverse_sde(model, x, LINEAR, ts, 0.0)
    assert torch.allclose(ours, edm.naive_euler(model, x, LINEAR, ts), atol=1e-10)


# --- bad input is refused by name ------------------------------------------------------------------
def _bad_sde_theory_calls():
    S = ss.sde_symbols()
    t = torch.tensor([0.5, 0.7], dtype=torch.float64)
    return [
        (lambda: th.linearised_ddpm_step("S"), TypeError, "S must be the symbol namespace made by symbolic.sde.sde_symbols()"),
        (lambda: th.linearised_ddpm_step(None), TypeError, "sde_symbols"),
        (lambda: th.linearised_ddpm_step(S, order=0), ValueError, "order must be at least 1"),
        (lambda: th.plain("x", S), TypeError, "expr must be a SymPy expression"),
        (lambda: th.plain(None, S), TypeError, "expr must be a SymPy expression"),
        (lambda: th.plain(S.alpha, object()), TypeError, "S must be the symbol namespace"),
        (lambda: th.amplification(None, 1.0, 0.1, 1.0, 0.0), TypeError, "f must be"),
        (lambda: th.amplification("f", 1.0, 0.1, 1.0, 0.0), TypeError, "f must be"),
        (lambda: th.amplification(1.0, math.nan, 0.1, 1.0, 0.0), ValueError, "g2 must be finite"),
        (lambda: th.amplification(1.0, 1.0, t * math.nan, 1.0, 0.0), ValueError, "dt must be finite"),
        (lambda: th.amplification(1.0, 1.0, 0.1, 0.0, 0.0), ValueError, "v must be positive"),
        (lambda: th.amplification(1.0, 1.0, 0.1, -t, 0.0), ValueError, "v must be positive"),
        (lambda: th.amplification(1.0, 1.0, 0.1, 1.0, math.inf), ValueError, "eta must be finite"),
        (lambda: th.amplification(1.0, 1.0, 0.1, torch.ones(2, dtype=torch.int64), 0.0), TypeError,
         "v must be a floating-point tensor"),
        (lambda: th.summary([1.0, math.nan]), ValueError, "values must be finite"),
        (lambda: th.summary(None), TypeError, "values must be a sequence"),
        (lambda: th.density_map(MIX, "s", [0.5], torch.zeros(3, dtype=torch.float64)), TypeError,
         "schedule must be a GaussianPath"),
        (lambda: th.density_map(MIX, LINEAR, [0.5], [0.0, 1.0]), TypeError, "xs must be a torch.Tensor"),
        (lambda: th.error_attribution("x", None, MIX, DISC, None, None, MIX), ValueError,
         "kind must be 'ddpm', 'em' or 'exact'"),
        (lambda: th.error_attribution("em", MIX.eps_model(DISC), MIX, DISC, t[:, None], t.flip(0) * 100, "q"),
         TypeError, "target must be a 1-D toy.GaussianMixture"),
    ]


@pytest.mark.parametrize("k", range(len(_bad_sde_theory_calls())))
def test_bad_input_raises_naming_the_argument(k):
    call, error, message = _bad_sde_theory_calls()[k]
    with pytest.raises(error, match=re.escape(message)):
        call()


def test_amplification_takes_numbers_tensors_and_sympy_alike():
    t = torch.tensor([0.5, 0.7], dtype=torch.float64)
    assert th.amplification(0.0, 1.0, 1, 1.0, 1.0) == 0.0
    assert torch.equal(th.amplification(0 * t, t, 1, t, 1.0), 0 * t)
    G, v = sp.symbols("G v", positive=True)
    assert sp.simplify(th.amplification(-G / 2, G, 1, v, 0) - (1 + G / 2 - G / (2 * v))) == 0
