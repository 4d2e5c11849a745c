import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from diffnb import forward, toy
from diffnb.samplers import ddpm
from diffnb.schedules import CosineVP, DiscreteVP, LinearVP
from diffnb.sde import (
    binned_mean,
    drift_diffusion,
    euler_maruyama_moments,
    fit_rbf,
    forward_sde_euler_maruyama,
    ks_distance,
    noised_mixture,
    probability_flow_rhs,
    reference_ode_solve,
    reverse_sde_euler_maruyama,
)

F64 = torch.float64
SCHEDULES = [DiscreteVP.linear(), LinearVP(), CosineVP()]


def gaussian_flow(schedule, m, s, x_from, t_from, t_to):
    """The exact PF-ODE map for data N(m, s^2): affine, the standardised value is conserved."""
    a0, s0, a1, s1 = (v(t) for t in (t_from, t_to) for v in (schedule.alpha, schedule.sigma))
    return a1 * m + torch.sqrt(a1**2 * s**2 + s1**2) * (x_from - a0 * m) / torch.sqrt(a0**2 * s**2 + s0**2)


def randn(*shape, seed=0):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=F64)


# --- reference ODE solver ------------------------------------------------------------------------
# Each solve costs a few hundred model calls, so the cases are chosen to cover every schedule and both
# directions with few solves.

@pytest.mark.parametrize("schedule,t_from,t_to", [
    (DiscreteVP.linear(), 1000.0, 0.0),       # sample: t_max -> clean data (sigma = 0)
    (CosineVP(), 0.0, 0.9946),                 # encode: clean data -> t_max
    (LinearVP(), 0.8, 0.2),                    # partial, inside the range
], ids=["sample-DiscreteVP", "encode-CosineVP", "partial-LinearVP"])
def test_reference_solve_matches_the_gaussian_closed_form(schedule, t_from, t_to):
    """Against the exact affine flow of Gaussian data, in both directions and to/from t_min (sigma = 0)."""
    m, s = 0.3, 0.5
    model = toy.GaussianMixture([1.0], [m], [s]).eps_model(schedule)
    x = randn(50, 1)
    out = reference_ode_solve(model, x, schedule, t_from, t_to)
    exact = gaussian_flow(schedule, m, s, x, t_from, t_to)
    assert out.dtype == F64 and out.shape == x.shape
    assert float((out - exact).abs().max()) < 1e-9


@settings(max_examples=2, deadline=None)
@given(m=st.floats(-2, 2), s=st.floats(0.01, 2.0), u=st.floats(0.0, 1.0), v=st.floats(0.0, 1.0))
def test_reference_solve_closed_form_property(m, s, u, v):
    """Any Gaussian data (down to the seed mixture's narrow widths), any pair of times on LinearVP.
    The tolerance is relative in y = x / alpha, the variable the solver controls: far from the
    data, y grows like rho (x - alpha m) / s and so does its allowed error."""
    schedule = LinearVP()
    if abs(u - v) < 1e-6:
        v = 1.0 - u if abs(1.0 - 2 * u) > 1e-3 else 0.0
    model = toy.GaussianMixture([1.0], [m], [s]).eps_model(schedule)
    x = randn(20, 1, seed=1) * 2
    out = reference_ode_solve(model, x, schedule, u, v)
    exact = gaussian_flow(schedule, m, s, x, u, v)
    alpha = schedule.alpha(v)
    assert bool(((out - exact).abs() / alpha <= 1e-9 * (1 + exact.abs() / alpha)).all())


def test_reference_solve_is_reversible_on_the_exact_mixture_score():
    """Sample (t_max -> 0) then encode (0 -> t_max) on the seed mixture: back to the start."""
    schedule = DiscreteVP.linear()
    model = toy.seed_mixture_1d().eps_model(schedule)
    x_T = randn(20, 1, seed=2)
    x_0 = reference_ode_solve(model, x_T, schedule, schedule.t_max, 0.0)
    back = reference_ode_solve(model, x_0, schedule, 0.0, schedule.t_max)
    assert float((back - x_T).abs().max()) < 1e-8


def test_reference_solve_tolerance_refinement_any_shape_and_info():
    """A (batch, 2) state on the 2-D mixture: tightening the tolerances by 10 moves the answer by
    less than 1e-8 and costs more model calls; a (batch, 2, 3) state with an element-wise model keeps
    its shape; info reports the work done; t_start == t_end returns a copy."""
    schedule = LinearVP()
    model = toy.mixture_2d().eps_model(schedule)
    x_T = randn(8, 2, seed=3)
    a, info_a = reference_ode_solve(model, x_T, schedule, 1.0, 0.0, return_info=True)
    b, info_b = reference_ode_solve(model, x_T, schedule, 1.0, 0.0, rtol=1e-11, atol=1e-11, return_info=True)
    assert float((a - b).abs().max()) < 1e-8
    assert 0 < info_a["nfev"] < info_b["nfev"] and info_a["n_steps"] > 0

    m, s, mix = 0.3, 0.5, toy.GaussianMixture([1.0], [0.3], [0.5])

    def elementwise(x, t):
        return mix.eps(x.reshape(-1, 1), schedule.alpha(t[0]), schedule.sigma(t[0])).reshape(x.shape)

    x = randn(2, 2, 3, seed=4)
    out = reference_ode_solve(elementwise, x, schedule, 0.9, 0.1)
    assert out.shape == x.shape
    assert float((out - gaussian_flow(schedule, m, s, x, 0.9, 0.1)).abs().max()) < 1e-9
    same = reference_ode_solve(elementwise, x, schedule, 0.5, 0.5)
    assert torch.equal(same, x) and same is not x


def test_reference_solve_calls_the_model_at_the_schedule_time():
    """The model is called with a (batch,) time on the schedule's own clock, inside [t_end, t_start].
    Unit-variance data keep q_t = N(0, 1) at every t, so the exact flow is the identity."""
    schedule = DiscreteVP.linear()
    seen = []

    def model(x, t):
        seen.append(float(t[0]))
        assert bool((t == t[0]).all()) and t.shape == (x.shape[0],)
        return toy.GaussianMixture([1.0], [0.0], [1.0]).eps(x, schedule.alpha(t), schedule.sigma(t))

    x = randn(4, 1, seed=6)
    out = reference_ode_solve(model, x, schedule, 700.0, 300.0)
    assert min(seen) >= 300.0 - 1e-9 and max(seen) <= 700.0 + 1e-9
    assert float((out - x).abs().max()) < 1e-9


def test_probability_flow_rhs_is_the_time_derivative_of_the_exact_flow():
    """dx/dt of the Gaussian closed form (central difference) equals f x + g^2/(2 sigma) eps."""
    schedule = LinearVP()
    m, s = -0.2, 0.7
    model = toy.GaussianMixture([1.0], [m], [s]).eps_model(schedule)
    x_T = randn(20, 1, seed=5)
    for t in (0.05, 0.3, 0.9):
        h = 1e-5
        x_t = gaussian_flow(schedule, m, s, x_T, 1.0, t)
        fd = (gaussian_flow(schedule, m, s, x_T, 1.0, t + h) - gaussian_flow(schedule, m, s, x_T, 1.0, t - h)) / (2 * h)
        rhs = probability_flow_rhs(model, x_t, torch.tensor(t, dtype=F64), schedule)
        assert float((rhs - fd).abs().max()) < 1e-7


def test_reference_solve_bad_input():
    schedule = LinearVP()
    model = toy.seed_mixture_1d().eps_model(schedule)
    x = randn(5, 1)
    with pytest.raises(TypeError, match="x_start must be float64"):
        reference_ode_solve(model, x.float(), schedule, 1.0, 0.0)
    with pytest.raises(TypeError, match="x_start must be a torch.Tensor"):
        reference_ode_solve(model, [1.0], schedule, 1.0, 0.0)
    with pytest.raises(TypeError, match="model must be callable"):
        reference_ode_solve(None, x, schedule, 1.0, 0.0)
    with pytest.raises(ValueError, match="rtol must be positive"):
        reference_ode_solve(model, x, schedule, 1.0, 0.0, rtol=-1.0)
    with pytest.raises(TypeError, match="atol must be a number"):
        reference_ode_solve(model, x, schedule, 1.0, 0.0, atol="tight")
    with pytest.raises(ValueError, match=r"t_end must lie in \[0, 1\]"):
        reference_ode_solve(model, x, schedule, 1.0, -0.5)
    with pytest.raises(ValueError, match="t_start must be a scalar time"):
        reference_ode_solve(model, x, schedule, torch.ones(2, dtype=F64), 0.0)
    with pytest.raises(ValueError, match="x_start must be finite"):
        reference_ode_solve(model, torch.full((2, 1), math.nan, dtype=F64), schedule, 1.0, 0.0)
    with pytest.raises(ValueError, match=r"model\(x, t\) must return x's shape"):
        reference_ode_solve(lambda x, t: x[:, :0], x, schedule, 1.0, 0.0)


def test_probability_flow_rhs_bad_input():
    schedule = DiscreteVP.linear()
    model = toy.seed_mixture_1d().eps_model(schedule)
    x = randn(5, 1)
    with pytest.raises(ValueError, match="sigma_t > 0"):
        probability_flow_rhs(model, x, 0.0, schedule)
    with pytest.raises(ValueError, match=r"t must lie in \[0, 1000\]"):
        probability_flow_rhs(model, x, 1001.0, schedule)
    with pytest.raises(TypeError, match="t must be a number or a floating-point tensor"):
        probability_flow_rhs(model, x, "500", schedule)
    with pytest.raises(TypeError, match="x must be a torch.Tensor"):
        probability_flow_rhs(model, 1.0, 500.0, schedule)


# --- drift and diffusion, forward and reverse Euler-Maruyama ------------------------------------

@settings(max_examples=20, deadline=None)
@given(u=st.floats(0.01, 0.99))
def test_drift_diffusion_against_finite_differences(u):
    """f = d log alpha / dt and g^2 = d sigma^2/dt - 2 f sigma^2 by central differences, every schedule."""
    for schedule in SCHEDULES[1:]:
        t = torch.tensor(u * schedule.t_max, dtype=F64)
        h = 1e-6
        f, g2 = drift_diffusion(schedule, t)
        fd_f = (schedule.log_alpha(t + h) - schedule.log_alpha(t - h)) / (2 * h)
        fd_var = (schedule.sigma(t + h) ** 2 - schedule.sigma(t - h) ** 2) / (2 * h)
        assert math.isclose(float(f), float(fd_f), rel_tol=1e-6)
        assert math.isclose(float(g2), float(fd_var - 2 * f * schedule.sigma(t) ** 2), rel_tol=1e-6)


def test_drift_diffusion_linear_vp_is_beta_and_discrete_vp_is_log_one_minus_beta():
    lin = LinearVP(0.1, 20.0)
    t = torch.linspace(0, 1, 11, dtype=F64)
    f, g2 = drift_diffusion(lin, t)
    assert torch.allclose(g2, 0.1 + 19.9 * t) and torch.allclose(f, -g2 / 2)
    disc = DiscreteVP.linear()
    n = torch.arange(1, 1001, dtype=F64)
    f, g2 = drift_diffusion(disc, n - 0.5)  # inside step n
    assert torch.allclose(g2, -torch.log1p(-disc.betas), rtol=1e-14)


def test_forward_euler_maruyama_on_discrete_vp_is_ddpm_to_first_order():
    """On DiscreteVP's integer grid each EM step uses the beta_n of the step it takes (not of the
    step before), and the chain's moments (euler_maruyama_moments) approach DDPM's exact alpha_t and
    sigma_t^2 at first order: with betas beta(t) / T, quadrupling T divides the gap by about 4."""
    first = DiscreteVP.linear()
    _, v = euler_maruyama_moments(first, torch.arange(0, 2, dtype=F64))
    assert math.isclose(float(v[1]), float(-torch.log1p(-first.betas[0])), rel_tol=1e-14)
    _, v = euler_maruyama_moments(first, torch.arange(499, 501, dtype=F64))
    assert math.isclose(float(v[1]), float(-torch.log1p(-first.betas[499])), rel_tol=1e-14)

    def gap(T):
        disc = DiscreteVP.linear(T, beta_start=0.1 / T, beta_end=20.0 / T)
        ts = torch.arange(0, T + 1, dtype=F64)
        c, v = euler_maruyama_moments(disc, ts)
        return max(float((c - disc.alpha(ts)).abs().max()), float((v - disc.sigma(ts) ** 2).abs().max()))

    assert 3.5 < gap(250) / gap(1000) < 4.5


def test_forward_euler_maruyama_samples_follow_the_chain_moments():
    """Samples of the simulated chain have the mean c x0 and variance v of euler_maruyama_moments
    (5 standard errors), and (c, v) converge to (alpha_t, sigma_t^2) at first order in the step."""
    schedule = LinearVP()
    ts = torch.linspace(0, 1, 51, dtype=F64)
    x0 = torch.full((20000, 1), 0.8, dtype=F64)
    states = []
    x1 = forward_sde_euler_maruyama(x0, schedule, ts, generator=torch.Generator().manual_seed(0),
                                    callback=lambda info: states.append(info["x"]))
    c, v = euler_maruyama_moments(schedule, ts)
    for k in (5, 20, 50):
        xk = states[k - 1]
        assert abs(float(xk.mean()) - 0.8 * float(c[k])) < 5 * math.sqrt(float(v[k]) / 20000)
        assert abs(float(xk.var()) / float(v[k]) - 1) < 5 * math.sqrt(2 / 20000)
    assert torch.equal(states[-1], x1)

    def gap(n):
        c, v = euler_maruyama_moments(schedule, torch.linspace(0, 1, n + 1, dtype=F64))
        grid = torch.linspace(0, 1, n + 1, dtype=F64)
        return float((v - schedule.sigma(grid) ** 2).abs().max())

    assert 1.8 < gap(200) / gap(400) < 2.2


def test_reverse_sde_one_step_is_the_formula_and_adds_g_sqrt_dt_noise():
    """A single step t -> s: without noise, x - (f x + g^2 / sigma * eps) (t - s); with
    last_step_noise=True, plus g sqrt(t - s) times the generator's normal draw."""
    schedule = LinearVP()
    model = toy.seed_mixture_1d().eps_model(schedule)
    x = randn(8, 1, seed=7)
    t, s = torch.tensor(0.6, dtype=F64), torch.tensor(0.55, dtype=F64)
    ts = torch.stack([t, s])
    f, g2 = drift_diffusion(schedule, t)
    mean = x - (f * x + g2 / schedule.sigma(t) * model(x, t.expand(8))) * (t - s)
    out = reverse_sde_euler_maruyama(model, x, schedule, ts)
    assert torch.allclose(out, mean, rtol=1e-14, atol=1e-15)
    noisy = reverse_sde_euler_maruyama(model, x, schedule, ts, generator=torch.Generator().manual_seed(1),
                                       last_step_noise=True)
    z = torch.randn(x.shape, generator=torch.Generator().manual_seed(1), dtype=F64)
    assert torch.allclose(noisy, mean + torch.sqrt(g2 * (t - s)) * z, rtol=1e-14, atol=1e-15)


def test_reverse_sde_converges_to_gaussian_data():
    """Gaussian data N(m, s^2), exact eps: the sample mean and variance of the reverse-SDE samples
    approach m and s^2 as the steps grow (first order in the step), within sampling error."""
    schedule, m, s = LinearVP(), 0.4, 0.3
    model = toy.GaussianMixture([1.0], [m], [s]).eps_model(schedule)
    n = 5000
    x_T = randn(n, 1, seed=8)

    def moments(steps):
        ts = schedule.timesteps(steps, t_end=1e-3)
        x = reverse_sde_euler_maruyama(model, x_T, schedule, ts, generator=torch.Generator().manual_seed(9))
        return float(x.mean()), float(x.var())

    (m1, v1), (m2, v2) = moments(10), moments(200)
    assert abs(m2 - m) < 5 * s / math.sqrt(n) + 0.01
    assert abs(v2 / s**2 - 1) < 0.1
    assert abs(v1 / s**2 - 1) > 2 * abs(v2 / s**2 - 1)  # coarse steps are visibly worse


def test_ddpm_step_is_a_reverse_sde_step_up_to_beta_squared():
    """One step n -> n - 1 at the same continuous time t = 1/2 on DiscreteVP.linear(T) with betas
    beta(t) / T: DDPM's posterior mean and variance (with x0_hat from the same eps) differ from the
    reverse-SDE Euler-Maruyama mean and variance g^2 dt by O(beta^2), so quartering beta (T x 4)
    divides both gaps by about 16."""
    data = toy.seed_mixture_1d()
    x = randn(16, 1, seed=10)

    def gaps(T):
        schedule = DiscreteVP.linear(T, beta_start=0.1 / T, beta_end=20.0 / T)
        model = data.eps_model(schedule)
        t, s = torch.tensor(T / 2, dtype=F64), torch.tensor(T / 2 - 1, dtype=F64)
        em = reverse_sde_euler_maruyama(model, x, schedule, torch.stack([t, s]))
        x0_hat = (x - schedule.sigma(t) * model(x, t.expand(16))) / schedule.alpha(t)
        mean, var = forward.posterior(schedule, x, x0_hat, t, s)
        _, g2 = drift_diffusion(schedule, t)
        return float((mean - em).abs().max()), abs(float(var) - float(g2))

    (m1, v1), (m4, v4) = gaps(250), gaps(1000)
    assert 12 < m1 / m4 < 20 and 12 < v1 / v4 < 20


# --- exact noised mixture and estimators --------------------------------------------------------

def test_noised_mixture_is_the_law_of_q_sample():
    """Its density is GaussianMixture.log_prob at (alpha_t, sigma_t); samples of x_t pass a KS test."""
    schedule, data = LinearVP(), toy.seed_mixture_1d()
    t = 0.3
    q_t = noised_mixture(data, schedule, t)
    x = torch.linspace(-1, 1, 9, dtype=F64)[:, None]
    assert torch.allclose(q_t.log_prob(x), data.log_prob(x, schedule.alpha(t), schedule.sigma(t)))
    g = torch.Generator().manual_seed(12)
    x_t, _ = forward.q_sample(schedule, data.sample(5000, generator=g), t, generator=g)
    assert ks_distance(x_t, q_t) < 1.95 / math.sqrt(5000)
    assert ks_distance(x_t, data) > 0.1  # and it is not the data distribution


def test_ks_distance_is_scipy_kstest():
    from scipy import stats

    x = randn(500, seed=13) * 0.7 + 0.2
    ours = ks_distance(x, toy.GaussianMixture([1.0], [0.2], [0.7]))
    theirs = stats.kstest(x.numpy(), stats.norm(0.2, 0.7).cdf).statistic
    assert math.isclose(ours, float(theirs), rel_tol=1e-12)
    assert ks_distance(x[:, None], toy.GaussianMixture([1.0], [0.2], [0.7])) == ours


def test_binned_mean_and_fit_rbf_estimate_a_conditional_mean():
    g = torch.Generator().manual_seed(14)
    x = 4 * torch.rand(20000, generator=g, dtype=F64) - 2
    y = torch.sin(2 * x) + 0.3 * torch.randn(20000, generator=g, dtype=F64)
    edges = torch.linspace(-2, 2, 21, dtype=F64)
    counts, means = binned_mean(x, y, torch.cat([edges, torch.tensor([3.0, 4.0], dtype=F64)]))
    assert counts.sum() == 20000 and counts[-1] == 0 and means[-1] == 0  # an empty bin
    j = 7
    inside = (x >= edges[j]) & (x < edges[j + 1])
    assert math.isclose(float(means[j]), float(y[inside].mean()), rel_tol=1e-12)
    centers = torch.linspace(-2, 2, 17, dtype=F64)
    predict = fit_rbf(x, y, centers, width=0.25)
    grid = torch.linspace(-1.8, 1.8, 50, dtype=F64)
    assert float((predict(grid) - torch.sin(2 * grid)).abs().max()) < 0.05
    # A function inside the span is recovered (to the ridge's accuracy) from noiseless data.
    target = 1.5 + 2 * torch.exp(-((x - 0.5) ** 2) / (2 * 0.25**2))
    exact = fit_rbf(x, target, centers, width=0.25)
    assert float((exact(grid) - (1.5 + 2 * torch.exp(-((grid - 0.5) ** 2) / (2 * 0.25**2)))).abs().max()) < 1e-4


def test_sde_helpers_bad_input():
    schedule = LinearVP()
    model = toy.seed_mixture_1d().eps_model(schedule)
    x = randn(5, 1)
    up = torch.linspace(0, 1, 5, dtype=F64)
    with pytest.raises(TypeError, match="schedule must be a diffnb.schedules.GaussianPath"):
        drift_diffusion("linear", 0.5)
    with pytest.raises(ValueError, match=r"t must lie in \[0, 1\]"):
        drift_diffusion(schedule, 1.5)
    with pytest.raises(ValueError, match="ts must be strictly increasing"):
        forward_sde_euler_maruyama(x, schedule, up.flip(0))
    with pytest.raises(TypeError, match="ts must be a 1-D torch.Tensor"):
        forward_sde_euler_maruyama(x, schedule, [0.0, 1.0])
    with pytest.raises(TypeError, match="ts must have the dtype of the samples"):
        forward_sde_euler_maruyama(x, schedule, up.float())
    with pytest.raises(TypeError, match="x0 must be a torch.Tensor"):
        forward_sde_euler_maruyama(0.5, schedule, up)
    with pytest.raises(TypeError, match="callback must be callable"):
        forward_sde_euler_maruyama(x, schedule, up, callback=1)
    with pytest.raises(ValueError, match="ts must be 1-D with at least 2 points"):
        euler_maruyama_moments(schedule, up[:1])
    with pytest.raises(ValueError, match="ts must be strictly decreasing"):
        reverse_sde_euler_maruyama(model, x, schedule, up)
    with pytest.raises(TypeError, match="last_step_noise must be a bool"):
        reverse_sde_euler_maruyama(model, x, schedule, up.flip(0), last_step_noise=1)
    with pytest.raises(TypeError, match="schedule must be a diffnb.schedules.GaussianPath"):
        reverse_sde_euler_maruyama(model, x, None, up.flip(0))
    with pytest.raises(TypeError, match="mixture must be a toy.GaussianMixture"):
        noised_mixture("data", schedule, 0.5)
    with pytest.raises(ValueError, match="t must be a scalar time"):
        noised_mixture(toy.seed_mixture_1d(), schedule, torch.ones(2, dtype=F64))
    with pytest.raises(ValueError, match="mixture must be 1-D, got dim=2"):
        ks_distance(x, toy.mixture_2d())
    with pytest.raises(ValueError, match=r"samples must have shape \(n,\) or \(n, 1\)"):
        ks_distance(randn(5, 2), toy.seed_mixture_1d())
    with pytest.raises(ValueError, match="y must pair with x"):
        binned_mean(x, x[:3], up)
    with pytest.raises(ValueError, match="edges must be a strictly increasing 1-D tensor"):
        binned_mean(x, x, up.flip(0))
    with pytest.raises(ValueError, match="width must be positive"):
        fit_rbf(x, x, up, width=0.0)
    with pytest.raises(ValueError, match="ridge must be a finite number >= 0"):
        fit_rbf(x, x, up, width=0.5, ridge=-1.0)


def test_reference_solve_is_one_ode_in_rho_on_every_path():
    """For data N(m, sd^2) the flow is y(rho) = m + (y_0 - m) sqrt(sd^2 + rho^2) / sqrt(sd^2 + rho_0^2)
    in y = x/alpha, rho = sigma/alpha: the same on a VP, a VE and a flow-matching path."""
    from diffnb.schedules import VE, FlowMatching
    m, sd = 0.4, 0.7
    y0 = torch.linspace(-2, 2, 7, dtype=F64)[:, None]
    lam0, lam1 = -2.0, 3.0
    rho0, rho1 = math.exp(-lam0), math.exp(-lam1)
    exact = m + (y0 - m) * math.sqrt(sd**2 + rho1**2) / math.sqrt(sd**2 + rho0**2)
    for s in (LinearVP(), VE(sigma_max=100.0), FlowMatching()):
        def model(x, t, s=s):
            a, sg = s.alpha(t)[:, None], s.sigma(t)[:, None]
            return sg * (x - a * m) / (a**2 * sd**2 + sg**2)
        t0, t1 = s.t_of_log_snr(lam0), s.t_of_log_snr(lam1)
        x1 = reference_ode_solve(model, s.alpha(t0) * y0, s, t0, t1)
        assert torch.allclose(x1 / s.alpha(t1), exact, rtol=1e-9, atol=1e-9), s
    with pytest.raises(ValueError, match="must have alpha > 0"):
        reference_ode_solve(model, y0, FlowMatching(), 1.0, 0.5)
