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
