import math

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from diffnb import forward
from diffnb.schedules import DiscreteVP, LinearVP

F64 = torch.float64


def normal_logpdf(x, mean, var):
    return -0.5 * (x - mean) ** 2 / var - 0.5 * torch.log(2 * math.pi * var)


def random_discrete(seed, T):
    g = torch.Generator().manual_seed(seed)
    return DiscreteVP(torch.rand(T, generator=g, dtype=F64) * 0.05 + 1e-4)


schedules = st.one_of(st.just(DiscreteVP.linear()), st.just(LinearVP()),
                      st.builds(random_discrete, st.integers(0, 1000), st.integers(2, 300)))


@given(schedules, st.floats(0.01, 0.99), st.floats(0.01, 1.0), st.integers(0, 10_000))
def test_posterior_is_the_bayes_product(s, frac_s, frac_t, seed):
    """q(x_s | x_t, x_0) = q(x_t | x_s) q(x_s | x_0) / q(x_t | x_0), pointwise."""
    t = torch.tensor(frac_t * s.t_max, dtype=F64)
    s_ = t * frac_s
    g = torch.Generator().manual_seed(seed)
    x0, xs, xt = torch.randn(3, 16, generator=g, dtype=F64)
    a_t, a_s = s.alpha(t), s.alpha(s_)
    log_bayes = (normal_logpdf(xt, a_t / a_s * xs, 1 - (a_t / a_s) ** 2)
                 + normal_logpdf(xs, a_s * x0, 1 - a_s**2)
                 - normal_logpdf(xt, a_t * x0, 1 - a_t**2))
    mean, var = forward.posterior(s, xt[:, None], x0[:, None], t, s_)
    assert torch.allclose(normal_logpdf(xs, mean[:, 0], var), log_bayes, rtol=1e-7, atol=1e-7)


def test_one_step_posterior_is_ddpm_eq7():
    s = DiscreteVP.linear()
    beta = s.betas
    abar = torch.cumprod(1 - beta, 0)
    for n in [1, 2, 10, 500, 1000]:
        coef_xt, coef_x0, var = forward.posterior_coefficients(s, float(n), float(n - 1))
        abar_prev = abar[n - 2] if n > 1 else torch.tensor(1.0, dtype=F64)
        b = beta[n - 1]
        assert torch.allclose(coef_xt, torch.sqrt(1 - b) * (1 - abar_prev) / (1 - abar[n - 1]), rtol=1e-10)
        assert torch.allclose(coef_x0, torch.sqrt(abar_prev) * b / (1 - abar[n - 1]), rtol=1e-10)
        assert torch.allclose(var, (1 - abar_prev) / (1 - abar[n - 1]) * b, rtol=1e-10, atol=1e-300)


def test_posterior_moments_match_monte_carlo():
    """Regress x_s on x_t over joint forward samples: slope, intercept and residual variance."""
    s, t, s_ = DiscreteVP.linear(), 600.0, 250.0
    g = torch.Generator().manual_seed(0)
    n, x0 = 400_000, torch.full((400_000, 1), 0.7, dtype=F64)
    xs, _ = forward.q_sample(s, x0, s_, generator=g)
    a = s.alpha(t) / s.alpha(s_)
    xt = a * xs + torch.sqrt(1 - a**2) * torch.randn(n, 1, generator=g, dtype=F64)
    coef_xt, coef_x0, var = forward.posterior_coefficients(s, t, s_)
    X = torch.cat([xt, torch.ones_like(xt)], 1)
    sol = torch.linalg.lstsq(X, xs).solution[:, 0]
    resid = xs[:, 0] - X @ sol
    se = 5 / math.sqrt(n)  # a generous 5-standard-error band for unit-scale quantities
    assert abs(float(sol[0] - coef_xt)) < se * 3
    assert abs(float(sol[1] - coef_x0 * 0.7)) < se * 3
    assert abs(float(resid.var() / var) - 1) < 0.02


def test_q_sample_moments():
    s = LinearVP()
    g = torch.Generator().manual_seed(1)
    x0 = torch.full((200_000, 2), -0.3, dtype=F64)
    xt, eps = forward.q_sample(s, x0, 0.4, generator=g)
    assert torch.allclose(xt, s.alpha(0.4) * x0 + s.sigma(0.4) * eps)
    assert abs(float(xt.mean()) - float(-0.3 * s.alpha(0.4))) < 0.01
    assert abs(float(xt.var()) - float(s.sigma(0.4) ** 2)) < 0.01


def test_q_sample_with_per_sample_times():
    s = DiscreteVP.linear()
    x0 = torch.ones(3, 2, dtype=F64)
    t = torch.tensor([0.0, 10.0, 1000.0], dtype=F64)
    xt, eps = forward.q_sample(s, x0, t, generator=torch.Generator().manual_seed(0))
    assert torch.allclose(xt[0], x0[0])
    assert torch.allclose(xt[2], s.alpha(1000.0) + s.sigma(1000.0) * eps[2])


def test_conversions_round_trip():
    g = torch.Generator().manual_seed(2)
    x, eps = torch.randn(2, 5, 3, generator=g, dtype=F64)
    alpha, sigma = torch.tensor(0.6, dtype=F64), torch.tensor(0.8, dtype=F64)
    x0 = forward.x0_from_eps(x, eps, alpha, sigma)
    assert torch.allclose(forward.eps_from_x0(x, x0, alpha, sigma), eps)
    assert torch.allclose(forward.eps_from_score(forward.score_from_eps(eps, sigma), sigma), eps)


def test_bad_input():
    s = DiscreteVP.linear()
    x = torch.zeros(4, 1, dtype=F64)
    with pytest.raises(ValueError, match=r"s must be earlier than t"):
        forward.posterior_coefficients(s, 10.0, 10.0)
    with pytest.raises(ValueError, match=r"x0 must be finite"):
        forward.q_sample(s, torch.tensor([[float("nan")]], dtype=F64), 1.0)
    with pytest.raises(ValueError, match=r"x_t must be finite"):
        forward.posterior(s, torch.tensor([[float("inf")]], dtype=F64), x[:1], 2.0, 1.0)
    with pytest.raises(ValueError, match=r"x0 must have x_t's shape"):
        forward.posterior(s, x, x[:2], 2.0, 1.0)
    with pytest.raises(TypeError, match=r"x0 must have x_t's dtype"):
        forward.posterior(s, x, x.float(), 2.0, 1.0)
    with pytest.raises(ValueError, match=r"a time tensor must be a scalar or have shape \(4,\)"):
        forward.q_sample(s, x, torch.ones(3, dtype=F64))
    with pytest.raises(ValueError, match=r"t must lie in \[0, 1000\]"):
        forward.q_sample(s, x, 2000.0)
    with pytest.raises(TypeError, match=r"x0 must be a torch.Tensor"):
        forward.q_sample(s, [0.0], 1.0)


# --- any Gaussian path ------------------------------------------------------------------------------
from diffnb.schedules import VE, CosineVP, FlowMatching  # noqa: E402

PATHS = [DiscreteVP.linear(), LinearVP(), CosineVP(), VE(), FlowMatching()]


@pytest.mark.parametrize("s", PATHS, ids=repr)
def test_posterior_of_any_path_is_the_bayes_product(s):
    """q(x_s | x_t, x_0) q(x_t | x_0) = q(x_t | x_s) q(x_s | x_0) with q(x_t | x_s) =
    N(alpha_t/alpha_s x_s, sigma_t^2 - (alpha_t/alpha_s)^2 sigma_s^2), at several points."""
    g = torch.Generator().manual_seed(3)
    t = torch.tensor(0.7 * s.t_max, dtype=F64)
    s_ = torch.tensor(0.3 * s.t_max, dtype=F64)
    x0, x_t, x_s = (torch.randn(6, 1, generator=g, dtype=F64) for _ in range(3))
    a_t, sg_t, a_s, sg_s = s.alpha(t), s.sigma(t), s.alpha(s_), s.sigma(s_)
    mean, var = forward.posterior(s, x_t, x0, t, s_)
    a_ts = a_t / a_s
    lhs = normal_logpdf(x_s, mean, var) + normal_logpdf(x_t, a_t * x0, sg_t**2)
    rhs = normal_logpdf(x_t, a_ts * x_s, sg_t**2 - a_ts**2 * sg_s**2) + normal_logpdf(x_s, a_s * x0, sg_s**2)
    assert torch.allclose(lhs, rhs, rtol=1e-10, atol=1e-10)


def test_posterior_at_the_ends_of_the_path():
    fm, ve = FlowMatching(), VE()
    x_t, x0 = torch.tensor([[0.3]], dtype=F64), torch.tensor([[-1.2]], dtype=F64)
    # From pure noise (alpha_1 = 0) x_t says nothing about x0: the posterior is q(x_s | x0).
    mean, var = forward.posterior(fm, x_t, x0, 1.0, 0.4)
    assert torch.allclose(mean, 0.6 * x0, rtol=1e-14) and torch.allclose(var, torch.tensor(0.16, dtype=F64))
    # To clean data (sigma_0 = 0) the posterior is the point x0, on every path.
    for s in (fm, ve, LinearVP()):
        mean, var = forward.posterior(s, x_t, x0, 0.5, 0.0)
        assert torch.equal(mean, x0) and float(var) == 0.0


def _exact_gaussian_eps(s, m=0.4, sd=0.7):
    """eps* of data N(m, sd^2) on any path: E[eps | x_t] = sigma (x - alpha m) / (alpha^2 sd^2 + sigma^2)."""
    def model(x, t):
        a, sg = s.alpha(t)[:, None], s.sigma(t)[:, None]
        return sg * (x - a * m) / (a**2 * sd**2 + sg**2)
    return model


@pytest.mark.parametrize("s", PATHS, ids=repr)
@pytest.mark.parametrize("prediction", forward.PREDICTIONS)
def test_parameterisations_round_trip(s, prediction):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(8, 2, generator=g, dtype=F64)
    t = s.t_min + (s.t_max - s.t_min) * torch.linspace(0.1, 0.9, 8, dtype=F64)
    eps = torch.randn(8, 2, generator=g, dtype=F64)
    out = forward.prediction_from_eps(eps, x, s, t, prediction)
    assert torch.allclose(forward.eps_from_prediction(out, x, s, t, prediction), eps, rtol=1e-10, atol=1e-10)
    # The wrapped model gives the eps model back.
    eps_model = _exact_gaussian_eps(s)
    net = lambda x_, t_: forward.prediction_from_eps(eps_model(x_, t_), x_, s, t_, prediction)  # noqa: E731
    wrapped = forward.as_eps_model(net, s, prediction)
    assert torch.allclose(wrapped(x, t), eps_model(x, t), rtol=1e-10, atol=1e-12)


def test_parameterisations_match_their_definitions():
    """Independent statements: v = alpha eps - sigma x0 (diffusers), flow matching's u = eps - x0."""
    g = torch.Generator().manual_seed(1)
    x0, eps = torch.randn(5, 1, generator=g, dtype=F64), torch.randn(5, 1, generator=g, dtype=F64)
    t = torch.full((5,), 0.3, dtype=F64)
    fm, vp = FlowMatching(), CosineVP()
    x = (1 - 0.3) * x0 + 0.3 * eps
    assert torch.allclose(forward.prediction_from_eps(eps, x, fm, t, "velocity"), eps - x0, rtol=1e-12)
    a, sg = vp.alpha(0.3), vp.sigma(0.3)
    x = a * x0 + sg * eps
    assert torch.allclose(forward.prediction_from_eps(eps, x, vp, t, "v"), a * eps - sg * x0, rtol=1e-12)
    assert torch.allclose(forward.prediction_from_eps(eps, x, vp, t, "x0"), x0, rtol=1e-12)
    # Where alpha = 0 (flow matching at t = 1) eps is still defined from x0 and velocity: x_1 = eps.
    one = torch.ones(5, dtype=F64)
    assert torch.allclose(forward.eps_from_prediction(x0, eps, fm, one, "x0"), eps, rtol=1e-15)
    assert torch.allclose(forward.eps_from_prediction(eps - x0, eps, fm, one, "velocity"), eps, rtol=1e-12)


def test_parameterisations_refuse_what_is_undefined():
    fm, x = FlowMatching(), torch.ones(2, 1, dtype=F64)
    with pytest.raises(ValueError, match="prediction='x0'.*not defined"):
        forward.eps_from_prediction(x, x, fm, torch.zeros(2, dtype=F64), "x0")  # sigma_0 = 0
    with pytest.raises(ValueError, match="prediction='v'.*not defined"):
        forward.prediction_from_eps(x, x, fm, torch.ones(2, dtype=F64), "v")  # alpha_1 = 0
    with pytest.raises(ValueError, match="prediction must be one of"):
        forward.as_eps_model(lambda x, t: x, fm, "noise")
    with pytest.raises(TypeError, match="schedule must be a diffnb.schedules.GaussianPath"):
        forward.as_eps_model(lambda x, t: x, "linear", "v")
    with pytest.raises(TypeError, match="model must be callable"):
        forward.as_eps_model(None, fm, "v")


_X = torch.zeros(4, 1, dtype=F64)
_NAN = float("nan")


@pytest.mark.parametrize("call, error, message", [
    (lambda: forward.x0_from_eps(None, _X, 0.6, 0.8), TypeError, r"x_t must be a torch.Tensor, got NoneType"),
    (lambda: forward.x0_from_eps(_X, "x", 0.6, 0.8), TypeError, r"eps must be a torch.Tensor, got str"),
    (lambda: forward.x0_from_eps(_X.long(), _X, 0.6, 0.8), TypeError, r"x_t must be a floating-point tensor"),
    (lambda: forward.x0_from_eps(_X, _X, _NAN, 0.8), ValueError, r"alpha must be finite, got nan"),
    (lambda: forward.x0_from_eps(_X, _X, 0.0, 0.8), ValueError, r"alpha must be positive \(the formula divides"),
    (lambda: forward.x0_from_eps(_X, _X, torch.tensor(0.0, dtype=F64), 0.8), ValueError, r"alpha must be positive"),
    (lambda: forward.x0_from_eps(_X, _X, 0.6, None), TypeError, r"sigma must be a number or a floating-point"),
    (lambda: forward.x0_from_eps(_X, _X, 0.6, -0.1), ValueError, r"sigma must be >= 0"),
    (lambda: forward.x0_from_eps(_X, torch.zeros(4, dtype=F64), 0.6, 0.8), ValueError,
     r"eps must have x_t's shape \(4, 1\) or broadcast to it, got shape \(4,\)"),
    (lambda: forward.x0_from_eps(_X, _X, torch.full((4,), 0.6, dtype=F64), 0.8), ValueError,
     r"alpha must have x_t's shape"),
    (lambda: forward.x0_from_eps(_X, _X, torch.tensor([[0.6], [_NAN], [0.6], [0.6]], dtype=F64), 0.8),
     ValueError, r"alpha must be finite"),
    (lambda: forward.eps_from_x0(_X, _X, 0.6, 0.0), ValueError, r"sigma must be positive"),
    (lambda: forward.eps_from_x0(_X, None, 0.6, 0.8), TypeError, r"x0 must be a torch.Tensor"),
    (lambda: forward.eps_from_x0(_X, _X, float("inf"), 0.8), ValueError, r"alpha must be finite, got inf"),
    (lambda: forward.score_from_eps(_X, 0.0), ValueError, r"sigma must be positive"),
    (lambda: forward.score_from_eps(_NAN, 0.5), TypeError, r"eps must be a torch.Tensor, got float"),
    (lambda: forward.eps_from_score(_X, _NAN), ValueError, r"sigma must be finite"),
    (lambda: forward.eps_from_score(_X, True), TypeError, r"sigma must be a number"),
])
def test_conversions_refuse_bad_input_by_name(call, error, message):
    with pytest.raises(error, match=message):
        call()


def test_conversions_accept_what_the_samplers_pass():
    """Python floats, 0-d tensors, per-sample (n, 1) scales, sigma = 0 where it only multiplies,
    alpha = 0 where it only multiplies (flow matching's t = 1), and an x0 that broadcasts."""
    x, eps = torch.randn(2, 4, 3, generator=torch.Generator().manual_seed(0), dtype=F64)
    a = torch.linspace(0.2, 0.9, 4, dtype=F64)[:, None]
    assert torch.equal(forward.x0_from_eps(x, eps, a, 0.0), x / a)
    assert torch.equal(forward.eps_from_x0(x, eps[:1], 0.0, 0.5), x / 0.5)
    assert torch.equal(forward.eps_from_x0(x, eps, a, torch.tensor(0.7, dtype=F64)), (x - a * eps) / 0.7)
    assert torch.equal(forward.eps_from_score(eps, 0.0), -0.0 * eps)
