"""DDIM, its inversion and its noise scale: identities, equivalences and bad input."""

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from diffnb import forward, metrics, toy
from diffnb.samplers import ddim, ddim_invert, ddim_sigma, ddpm, predict_eps
from diffnb.schedules import VE, CosineVP, DiscreteVP, FlowMatching, LinearVP

F64 = torch.float64
VP_SCHEDULES = [DiscreteVP.linear(), DiscreteVP.cosine(), LinearVP(), CosineVP()]
SCHEDULES = VP_SCHEDULES + [VE(), FlowMatching()]


def randn(n, seed, dim=1):
    return torch.randn(n, dim, generator=torch.Generator().manual_seed(seed), dtype=F64)


def point_mass_model(schedule, x0):
    """The exact eps for data concentrated at x0 (one point per sample): eps = (x - alpha_t x0)/sigma_t.
    Feeding it to a sampler applies q_sigma(x_s | x_t, x0) itself."""
    return lambda x, t: (x - schedule.alpha(t)[:, None] * x0) / schedule.sigma(t)[:, None]


def random_grid(schedule, draw_fracs):
    """A strictly decreasing grid from the start (t_max; 0.99 for flow matching, whose alpha vanishes at t = 1)
    to t_min through the given interior fractions."""
    t_start = 0.99 if isinstance(schedule, FlowMatching) else schedule.t_max
    span = t_start - schedule.t_min
    inner = sorted({round(f, 6) for f in draw_fracs if 1e-3 < f < 1 - 1e-3}, reverse=True)
    ts = [t_start] + [schedule.t_min + f * span for f in inner] + [schedule.t_min]
    return torch.tensor(ts, dtype=F64)


# --- one step is the paper's equation ---------------------------------------------------------------
def test_one_step_is_ddim_eq12_in_alpha_bar_form(gaussian_data):
    """x_s = sqrt(abar_s) x0_hat + sqrt(1 - abar_s - sigma^2) eps + sigma z with DDIM's eq. (16) sigma."""
    s = DiscreteVP.linear()
    model = gaussian_data(s).model
    x, eta = randn(64, 0), 0.7
    ts = torch.tensor([700.0, 640.0], dtype=F64)
    out = ddim(model, x, s, ts, eta=eta, generator=torch.Generator().manual_seed(3))
    z = randn(64, 3)
    at, a_s = s.alpha_bar(700.0), s.alpha_bar(640.0)
    eps = predict_eps(model, x, ts[0])
    x0_hat = (x - torch.sqrt(1 - at) * eps) / torch.sqrt(at)
    sig = eta * torch.sqrt((1 - a_s) / (1 - at) * (1 - at / a_s))
    expected = torch.sqrt(a_s) * x0_hat + torch.sqrt(1 - a_s - sig**2) * eps + sig * z
    assert torch.allclose(out, expected, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("schedule", SCHEDULES, ids=repr)
def test_deterministic_step_is_an_euler_step_in_noise_to_signal(gaussian_data, schedule):
    """eta = 0: x_s / alpha_s = x_t / alpha_t + (rho_s - rho_t) eps_hat with rho = sigma / alpha."""
    model = gaussian_data(schedule).model
    x = randn(32, 1)
    t, s_ = 0.8 * schedule.t_max, 0.3 * schedule.t_max
    ts = torch.tensor([t, s_], dtype=F64)
    out = ddim(model, x, schedule, ts)
    eps = predict_eps(model, x, ts[0])
    rho_t, rho_s = schedule.noise_to_signal(t), schedule.noise_to_signal(s_)
    euler = schedule.alpha(s_) * (x / schedule.alpha(t) + (rho_s - rho_t) * eps)
    assert torch.allclose(out, euler, rtol=1e-12, atol=1e-13)


# --- eta = 1 is DDPM; eta = 0 is deterministic --------------------------------------------------------
def test_eta_one_equals_ddpm_on_the_one_step_chain():
    """Steps t -> t - 1 as in DDPM itself (the last 300 of the 1000; Chapter 2 runs all of them)."""
    s = DiscreteVP.linear()
    model = toy.seed_mixture_1d().eps_model(s)
    x = randn(32, 0)
    ts = s.timesteps(1000)[-301:]
    a = ddim(model, x, s, ts, eta=1.0, generator=torch.Generator().manual_seed(7))
    b = ddpm(model, x, s, ts, generator=torch.Generator().manual_seed(7))
    assert torch.allclose(a, b, rtol=0, atol=1e-11)
    # the agreement is not an accident of the model: other noise gives other samples
    tail = ts[-51:]
    c7 = ddpm(model, x, s, tail, generator=torch.Generator().manual_seed(7))
    c8 = ddpm(model, x, s, tail, generator=torch.Generator().manual_seed(8))
    assert (c7 - c8).abs().max() > 1e-3


@settings(max_examples=15)
@given(k=st.integers(0, len(SCHEDULES) - 1), fracs=st.lists(st.floats(0, 1), min_size=0, max_size=12),
       seed=st.integers(0, 2**16))
def test_eta_one_equals_respaced_ddpm_on_any_grid_and_any_path(k, fracs, seed):
    schedule = SCHEDULES[k]
    model = toy.seed_mixture_1d().eps_model(schedule)
    ts = random_grid(schedule, fracs)
    x = randn(16, seed)
    a = ddim(model, x, schedule, ts, eta=1.0, generator=torch.Generator().manual_seed(seed + 1))
    b = ddpm(model, x, schedule, ts, generator=torch.Generator().manual_seed(seed + 1))
    assert torch.allclose(a, b, rtol=1e-10, atol=1e-10)


def test_eta_zero_is_deterministic_and_leaves_the_generator_alone():
    s = DiscreteVP.linear()
    model = toy.seed_mixture_1d().eps_model(s)
    x, ts = randn(64, 0), s.timesteps(20)
    g1, g2 = torch.Generator().manual_seed(1), torch.Generator().manual_seed(2)
    assert torch.equal(ddim(model, x, s, ts, generator=g1), ddim(model, x, s, ts, generator=g2))
    assert torch.equal(torch.randn(3, generator=g1), torch.randn(3, generator=torch.Generator().manual_seed(1)))
    noisy = ddim(model, x, s, ts, eta=0.5, generator=torch.Generator().manual_seed(1))
    assert (noisy - ddim(model, x, s, ts)).abs().max() > 1e-3


# --- the noise scale ---------------------------------------------------------------------------------
@given(k=st.integers(0, len(SCHEDULES) - 1), a=st.floats(0.01, 1.0), b=st.floats(0.0, 0.99), eta=st.floats(0, 3))
def test_ddim_sigma_is_eta_times_the_posterior_std_on_any_path(k, a, b, eta):
    """varsigma^2 = eta^2 sigma_s^2 sigma_{t|s}^2 / sigma_t^2 with sigma_{t|s}^2 = sigma_t^2 - (alpha_t/alpha_s)^2 sigma_s^2,
    written from alpha and sigma directly (on VP: DDIM's eq. 16 in alpha-bar form, checked below)."""
    schedule = SCHEDULES[k]
    t = schedule.t_min + a * (schedule.t_max - schedule.t_min)
    s_ = schedule.t_min + b * (t - schedule.t_min)
    a_t, a_s, sg_t, sg_s = (float(f(v)) for f, v in ((schedule.alpha, t), (schedule.alpha, s_),
                                                      (schedule.sigma, t), (schedule.sigma, s_)))
    var = sg_s**2 * (sg_t**2 - (a_t / a_s) ** 2 * sg_s**2) / sg_t**2
    one = ddim_sigma(schedule, t, s_, 1.0)
    assert math.isclose(float(one) ** 2, var, rel_tol=1e-9, abs_tol=1e-15)
    assert torch.allclose(ddim_sigma(schedule, t, s_, eta), eta * one, rtol=1e-12, atol=1e-300)
    # eta = 1 always leaves room for the direction term: sigma_s^2 - varsigma^2 >= 0.
    assert sg_s**2 - float(one) ** 2 >= 0


@given(k=st.integers(0, len(VP_SCHEDULES) - 1), a=st.floats(0.01, 1.0), b=st.floats(0.01, 0.99))
def test_ddim_sigma_is_ddims_eq16_on_vp(k, a, b):
    """Against DDIM's eq. 16 written naively in alpha-bar (so s stays away from 0, where 1 - alpha_bar_s loses digits)."""
    schedule = VP_SCHEDULES[k]
    t = schedule.t_min + a * (schedule.t_max - schedule.t_min)
    s_ = schedule.t_min + b * (t - schedule.t_min)
    at, a_s = float(schedule.alpha_bar(t)), float(schedule.alpha_bar(s_))
    eq16 = math.sqrt((1 - a_s) / (1 - at) * (1 - at / a_s))
    assert math.isclose(float(ddim_sigma(schedule, t, s_)), eq16, rel_tol=1e-8, abs_tol=1e-15)


def test_the_largest_eta_makes_the_eps_coefficient_vanish(gaussian_data):
    """eta_max^2 = abar_s (1 - abar_t) / (abar_s - abar_t) > 1 gives sigma^2 = 1 - abar_s exactly."""
    s = DiscreteVP.linear()
    t, s_ = 500.0, 450.0
    at, a_s = float(s.alpha_bar(t)), float(s.alpha_bar(s_))
    eta_max = math.sqrt(a_s * (1 - at) / (a_s - at))
    assert eta_max > 1
    assert abs(float(ddim_sigma(s, t, s_, eta_max)) ** 2 - (1 - a_s)) < 1e-12
    model = gaussian_data(s).model
    ts = torch.tensor([t, s_], dtype=F64)
    ddim(model, randn(8, 0), s, ts, eta=0.999 * eta_max, generator=torch.Generator().manual_seed(0))
    with pytest.raises(ValueError, match=r"eta=.* is too large for the step t=500 -> s=450"):
        ddim(model, randn(8, 0), s, ts, eta=1.01 * eta_max, generator=torch.Generator().manual_seed(0))


# --- marginals: why DDIM can skip steps --------------------------------------------------------------
@pytest.mark.parametrize("eta", [0.0, 0.4, 1.0])
def test_every_eta_preserves_every_marginal_given_x0(eta):
    """Driven by the exact eps of a known x0, each step samples q_sigma(x_s | x_t, x0); started from
    q(x_T | x0) the chain has q(x_s | x0) = N(alpha_s x0, sigma_s^2) at every grid time (Monte Carlo)."""
    s = DiscreteVP.linear()
    n = 20_000
    x0 = toy.seed_mixture_1d().sample(n, generator=torch.Generator().manual_seed(0))
    g = torch.Generator().manual_seed(1)
    x_T, _ = forward.q_sample(s, x0, 1000.0, generator=g)
    ts = torch.tensor([1000.0, 870.0, 610.0, 333.0, 120.0, 37.0, 5.0], dtype=F64)
    seen = []
    ddim(point_mass_model(s, x0), x_T, s, ts, eta=eta, generator=g, callback=lambda info: seen.append(info))
    assert [float(i["t"]) for i in seen] == ts[1:].tolist()
    for info in seen:
        z = (info["x"] - s.alpha(info["t"]) * x0) / s.sigma(info["t"])  # should be N(0, 1)
        assert abs(float(z.mean())) < 4 / math.sqrt(n)
        assert abs(float(z.var()) - 1) < 0.04


@pytest.mark.parametrize("eta", [0.0, 0.5, 1.0])
@pytest.mark.parametrize("n_steps", [5, 50])
def test_gaussian_data_matches_the_exact_linear_recursion(gaussian_data, eta, n_steps):
    """For data N(m, sd^2) eps is linear in x, so x_s = A x_t + B + sigma z and the output is Gaussian
    with a mean and variance given by a scalar recursion. Monte Carlo must agree with it."""
    sch = DiscreteVP.linear()
    m, sd = 0.3, 0.5
    model = gaussian_data(sch, m, sd).model
    ts = sch.timesteps(n_steps)
    mean, var = 0.0, 1.0
    for t, s_ in zip(ts[:-1], ts[1:]):
        a, sg = float(sch.alpha(t)), float(sch.sigma(t))
        a_s, sg_s = float(sch.alpha(s_)), float(sch.sigma(s_))
        gain = a * sd**2 / (a**2 * sd**2 + sg**2)  # x0_hat = m + gain (x - a m)
        c = float(ddim_sigma(sch, t, s_, eta))
        d = math.sqrt(sg_s**2 - c**2)
        A = a_s * gain + d * (1 - a * gain) / sg
        B = (a_s - d * a / sg) * (m - gain * a * m)
        mean, var = A * mean + B, A**2 * var + c**2
    g = torch.Generator().manual_seed(0)
    x = ddim(model, torch.randn(40_000, 1, generator=g, dtype=F64), sch, ts, eta=eta, generator=g)
    assert abs(float(x.mean()) - mean) < 5 * (var / 40_000) ** 0.5
    assert abs(float(x.var()) / var - 1) < 0.03


def test_deterministic_ddim_converges_at_first_order_to_the_exact_flow(gaussian_data):
    """For data N(m, sd^2) the flow is y(rho) = m + (y_T - m) sqrt(sd^2 + rho^2) / sqrt(sd^2 + rho_T^2)
    with y = x / alpha, rho = sigma / alpha. DDIM (eta = 0) is Euler in (rho, y): error ~ 1/N."""
    sch = LinearVP()
    m, sd = 0.3, 0.5
    model = gaussian_data(sch, m, sd).model
    x_T = randn(8, 0)
    t_end = 1e-3
    rho_T, rho_0 = float(sch.noise_to_signal(1.0)), float(sch.noise_to_signal(t_end))
    y = m + (x_T / float(sch.alpha(1.0)) - m) * math.sqrt(sd**2 + rho_0**2) / math.sqrt(sd**2 + rho_T**2)
    exact = float(sch.alpha(t_end)) * y
    steps = [8, 16, 32, 64, 128]
    errors = [metrics.rms_error(ddim(model, x_T, sch, sch.timesteps(n, "logsnr", t_end=t_end)), exact) for n in steps]
    assert 0.85 < metrics.fit_order(steps, errors) < 1.15


# --- inversion ---------------------------------------------------------------------------------------
def test_inversion_step_is_the_reverse_euler_step(gaussian_data):
    s = DiscreteVP.linear()
    model = gaussian_data(s).model
    x = randn(16, 0)
    ts = torch.tensor([300.0, 120.0], dtype=F64)
    up = ddim_invert(model, x, s, ts)
    eps = predict_eps(model, x, ts[1])
    x0_hat = (x - s.sigma(120.0) * eps) / s.alpha(120.0)
    assert torch.allclose(up, s.alpha(300.0) * x0_hat + s.sigma(300.0) * eps, rtol=1e-12, atol=1e-13)


@pytest.mark.parametrize("schedule", [DiscreteVP.linear(), LinearVP()], ids=repr)
def test_inversion_is_exact_when_the_flow_is_a_straight_line(schedule):
    """For data at a single point the flow is a straight line in (rho, y): Euler is exact both ways, so
    decode(encode(x)) = x to rounding on any grid."""
    x0 = torch.full((32, 1), 0.4, dtype=F64)
    model = point_mass_model(schedule, x0)
    t_end = schedule.t_min + 1e-3 * (schedule.t_max - schedule.t_min)
    x, _ = forward.q_sample(schedule, x0, t_end, generator=torch.Generator().manual_seed(0))
    ts = schedule.timesteps(7, "quadratic", t_end=t_end)
    assert torch.allclose(ddim(model, ddim_invert(model, x, schedule, ts), schedule, ts), x, rtol=0, atol=1e-9)


def test_inversion_round_trip_on_exact_score_data_is_first_order(gaussian_data):
    """Gaussian data, exact eps: decode(encode(x0)) -> x0 with error ~ 1/N (both walks are Euler)."""
    sch = DiscreteVP.linear()
    data = gaussian_data(sch)
    model, mix = data.model, data.mixture
    x0 = mix.sample(256, generator=torch.Generator().manual_seed(0))
    steps = [20, 40, 80, 160]
    errors = []
    for n in steps:
        ts = sch.timesteps(n)
        errors.append(metrics.rms_error(ddim(model, ddim_invert(model, x0, sch, ts), sch, ts), x0))
    assert errors[-1] < 0.05 * float(mix.stds[0, 0])
    assert 0.85 < metrics.fit_order(steps, errors) < 1.3


def test_inversion_of_the_seed_mixture_on_a_quadratic_grid_converges():
    """On the source notes' mixture the typical (median) round-trip error falls like 1/N on a grid that
    starts with small steps; the uniform grid's first step from t = 0 (where the exact eps is 0) stalls."""
    sch = DiscreteVP.linear()
    mix = toy.seed_mixture_1d()
    model = mix.eps_model(sch)
    x0 = mix.sample(200, generator=torch.Generator().manual_seed(0))
    assert float(predict_eps(model, x0, torch.tensor(0.0, dtype=F64)).abs().max()) == 0.0

    def median_error(ts):
        return float((ddim(model, ddim_invert(model, x0, sch, ts), sch, ts) - x0).abs().median())

    steps = [30, 60, 120]
    quad = [median_error(sch.timesteps(n, "quadratic")) for n in steps]
    unif = [median_error(sch.timesteps(n)) for n in steps]
    assert 0.75 < metrics.fit_order(steps, quad) < 1.25
    assert metrics.fit_order(steps, unif) < 0.6 and all(q < u for q, u in zip(quad, unif))


def test_callbacks_report_each_step_in_order(gaussian_data):
    s = DiscreteVP.linear()
    model = gaussian_data(s).model
    ts = s.timesteps(4)
    down, up = [], []
    x = ddim(model, randn(4, 0), s, ts, callback=down.append)
    ddim_invert(model, x, s, ts, callback=up.append)
    assert [int(d["i"]) for d in down] == [0, 1, 2, 3] and [float(d["t"]) for d in down] == ts[1:].tolist()
    assert [float(d["t"]) for d in up] == ts.flip(0)[1:].tolist()
    assert all({"i", "t", "t_prev", "x", "x0_hat", "eps_hat"} <= set(d) for d in down + up)
    assert torch.equal(down[-1]["x"], x)


def test_dtype_follows_the_input(gaussian_data):
    s = LinearVP()
    model = gaussian_data(s).model
    x = randn(8, 0).float()
    ts = s.timesteps(5, dtype=torch.float32)
    assert ddim(model, x, s, ts, eta=0.5, generator=torch.Generator().manual_seed(0)).dtype == torch.float32
    assert ddim_invert(model, x, s, ts).dtype == torch.float32


# --- bad input ---------------------------------------------------------------------------------------
def test_bad_eta_is_refused(gaussian_data):
    s = DiscreteVP.linear()
    model = gaussian_data(s).model
    x, ts = randn(4, 0), s.timesteps(5)
    with pytest.raises(ValueError, match=r"eta must be >= 0, got -0.1"):
        ddim(model, x, s, ts, eta=-0.1)
    with pytest.raises(ValueError, match=r"eta must be >= 0, got nan"):
        ddim(model, x, s, ts, eta=float("nan"))
    with pytest.raises(TypeError, match=r"eta must be a number, got str"):
        ddim(model, x, s, ts, eta="1")
    with pytest.raises(TypeError, match=r"eta must be a number, got bool"):
        ddim(model, x, s, ts, eta=True)
    with pytest.raises(ValueError, match=r"eta=inf is too large"):
        ddim(model, x, s, ts, eta=float("inf"))


def test_a_grid_that_is_not_strictly_decreasing_is_refused(gaussian_data):
    s = DiscreteVP.linear()
    model = gaussian_data(s).model
    x = randn(4, 0)
    for ts in ([1000.0, 500.0, 500.0, 0.0], [0.0, 500.0, 1000.0]):
        ts = torch.tensor(ts, dtype=F64)
        with pytest.raises(ValueError, match=r"ts must be strictly decreasing"):
            ddim(model, x, s, ts)
        with pytest.raises(ValueError, match=r"ts must be strictly decreasing"):
            ddim_invert(model, x, s, ts)
    with pytest.raises(ValueError, match=r"ts must lie in \[0, 1000\]"):
        ddim(model, x, s, torch.tensor([2000.0, 0.0], dtype=F64))
    with pytest.raises(TypeError, match=r"ts must have the dtype of the samples"):
        ddim(model, x, s, s.timesteps(3, dtype=torch.float32))
    with pytest.raises(ValueError, match=r"x_0 must be finite"):
        ddim_invert(model, torch.full((2, 1), float("nan"), dtype=F64), s, s.timesteps(3))


def test_schedules_that_are_not_gaussian_paths_and_alpha_zero_are_refused(gaussian_data):
    s = DiscreteVP.linear()
    model, x = gaussian_data(s).model, randn(4, 0)
    for bad in (None, "linear", s.betas):
        with pytest.raises(TypeError, match=r"schedule must be a diffnb.schedules.GaussianPath"):
            ddim(model, x, bad, s.timesteps(3))
        with pytest.raises(TypeError, match=r"schedule must be a diffnb.schedules.GaussianPath"):
            ddim_invert(model, x, bad, s.timesteps(3))
        with pytest.raises(TypeError, match=r"schedule must be a diffnb.schedules.GaussianPath"):
            ddim_sigma(bad, 2.0, 1.0)
    fm = FlowMatching()
    with pytest.raises(ValueError, match=r"ts\[0\] = 1 has alpha_t = 0 \(log_snr = -inf\) on FlowMatching\(\).*t < 1"):
        ddim(model, x, fm, fm.timesteps(3))


def test_inversion_may_end_at_flow_matchings_pure_noise(gaussian_data):
    """Inverting up to t = 1 (alpha = 0) never divides by that alpha: the last step returns eps_hat itself."""
    fm = FlowMatching()
    model = gaussian_data(fm).model
    infos = []
    z = ddim_invert(model, randn(8, 0) * 0.5, fm, torch.tensor([1.0, 0.6, 0.2, 0.0], dtype=F64), callback=infos.append)
    assert float(infos[-1]["t"]) == 1.0 and torch.equal(z, infos[-1]["eps_hat"])


def test_ddim_sigma_refuses_bad_arguments():
    s = DiscreteVP.linear()
    with pytest.raises(ValueError, match=r"s must be earlier than t"):
        ddim_sigma(s, 100.0, 200.0)
    with pytest.raises(ValueError, match=r"s must be earlier than t"):
        ddim_sigma(s, 0.0, 0.0)
    with pytest.raises(ValueError, match=r"eta must be >= 0"):
        ddim_sigma(s, 200.0, 100.0, -1.0)
    with pytest.raises(TypeError, match=r"eta must be a number, got NoneType"):
        ddim_sigma(s, 200.0, 100.0, None)
    with pytest.raises(TypeError, match=r"t must be a number or a floating-point tensor"):
        ddim_sigma(s, "200", 100.0)
    with pytest.raises(ValueError, match=r"t must lie in"):
        ddim_sigma(s, 2000.0, 100.0)


def test_a_model_with_the_wrong_output_is_refused():
    s = DiscreteVP.linear()
    x, ts = randn(4, 0), s.timesteps(3)
    with pytest.raises(ValueError, match=r"model\(x, t\) must return x's shape"):
        ddim(lambda x, t: x[:, :0], x, s, ts)
    with pytest.raises(ValueError, match=r"model\(x, t\) must be finite"):
        ddim_invert(lambda x, t: x / 0.0, x, s, ts)
    with pytest.raises(TypeError, match=r"model must be callable"):
        ddim(None, x, s, ts)
