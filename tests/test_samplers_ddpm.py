import pytest
import torch

from diffnb import forward, metrics, toy
from diffnb.samplers import ddpm, predict_eps
from diffnb.schedules import DiscreteVP, LinearVP

F64 = torch.float64


def gaussian_model(schedule, m=0.3, s=0.5):
    """Exact eps for data N(m, s^2): a linear function of x."""
    mix = toy.GaussianMixture([1.0], [m], [s])
    return mix.eps_model(schedule), mix


def test_ddpm_step_is_the_algorithm_box():
    """One step equals Ho et al.'s Algorithm 2 line: x_{t-1} = (x_t - beta/sqrt(1-abar) eps)/sqrt(1-beta) + sigma z."""
    s = DiscreteVP.linear()
    model, _ = gaussian_model(s)
    x = torch.randn(64, 1, generator=torch.Generator().manual_seed(0), dtype=F64)
    t, n = torch.tensor([700.0, 699.0], dtype=F64), 700
    out = ddpm(model, x, s, t, generator=torch.Generator().manual_seed(1))
    z = torch.randn(x.shape, generator=torch.Generator().manual_seed(1), dtype=F64)
    beta, abar, abar_prev = s.betas[n - 1], s.alpha_bar(700.0), s.alpha_bar(699.0)
    eps = predict_eps(model, x, t[0])
    expected = (x - beta / torch.sqrt(1 - abar) * eps) / torch.sqrt(1 - beta) + torch.sqrt(
        (1 - abar_prev) / (1 - abar) * beta) * z
    assert torch.allclose(out, expected, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("n_steps", [1000, 50, 5])
def test_ddpm_on_gaussian_data_matches_the_exact_linear_recursion(n_steps):
    """For data N(m, s^2) and the exact eps, each step is x_s = A x_t + B + sqrt(v) z, so the output is
    Gaussian with a mean and variance given by a scalar recursion; Monte Carlo must agree with it."""
    sch = DiscreteVP.linear()
    m, sd = 0.3, 0.5
    model, _ = gaussian_model(sch, m, sd)
    ts = sch.timesteps(n_steps)
    mean, var = 0.0, 1.0
    for t, s_ in zip(ts[:-1], ts[1:]):
        a = float(sch.alpha(t))
        gain = a * sd**2 / (a**2 * sd**2 + 1 - a**2)  # E[x0 | x_t] = m + gain (x_t - a m)
        cxt, cx0, v = (float(c) for c in forward.posterior_coefficients(sch, t, s_))
        A, B = cxt + cx0 * gain, cx0 * (m - gain * a * m)
        mean, var = A * mean + B, A**2 * var + v
    g = torch.Generator().manual_seed(0)
    x = ddpm(model, torch.randn(40_000, 1, generator=g, dtype=F64), sch, ts, generator=g)
    assert abs(float(x.mean()) - mean) < 5 * (var / 40_000) ** 0.5
    assert abs(float(x.var()) / var - 1) < 0.03
    if n_steps == 1000:  # the full chain is close to the data distribution
        assert abs(var**0.5 - sd) < 0.01 and abs(mean - m) < 0.01
    if n_steps == 5:  # a few respaced steps lose variance: x0_hat is a mean, not a sample
        assert var**0.5 < 0.8 * sd


def test_naive_skipping_with_the_one_step_formula_fails_but_the_respaced_posterior_works():
    """Using DDPM's one-step update (beta_t of the single step) across a 20-step jump does not denoise."""
    s = DiscreteVP.linear()
    mix = toy.seed_mixture_1d()
    model = mix.eps_model(s)
    g = torch.Generator().manual_seed(0)
    xT = torch.randn(4000, 1, generator=g, dtype=F64)
    ts = s.timesteps(50)
    good = ddpm(model, xT, s, ts, generator=torch.Generator().manual_seed(1))
    x = xT.clone()
    gen = torch.Generator().manual_seed(1)
    for t in ts[:-1]:  # naive: the one-step mean and variance of step t, applied once per 20 steps
        n = int(t)
        beta, abar = s.betas[n - 1], s.alpha_bar(t)
        eps = model(x, t.expand(x.shape[0]))
        var = (1 - s.alpha_bar(t - 1)) / (1 - abar) * beta
        x = (x - beta / torch.sqrt(1 - abar) * eps) / torch.sqrt(1 - beta) + torch.sqrt(var) * torch.randn(
            x.shape, generator=gen, dtype=F64)
    assert metrics.wasserstein_1d(good, mix) < 0.05
    assert metrics.wasserstein_1d(x, mix) > 5 * metrics.wasserstein_1d(good, mix)


def test_callback_receives_each_step():
    s = LinearVP()
    model, _ = gaussian_model(s)
    seen = []
    ddpm(model, torch.zeros(3, 1, dtype=F64), s, s.timesteps(5), generator=torch.Generator().manual_seed(0),
         callback=seen.append)
    assert [d["i"] for d in seen] == list(range(5))
    assert all({"t", "t_prev", "x", "x0_hat", "eps_hat"} <= set(d) for d in seen)
    assert float(seen[-1]["t"]) == 0.0


def test_last_step_to_t0_returns_x0_hat():
    s = DiscreteVP.linear()
    model, _ = gaussian_model(s)
    seen = []
    x = ddpm(model, torch.randn(5, 1, dtype=F64), s, s.timesteps(10), generator=torch.Generator().manual_seed(0),
             callback=seen.append)
    assert torch.allclose(x, seen[-1]["x0_hat"], atol=1e-12)


def test_float32_stays_float32():
    s = DiscreteVP.linear()
    model = toy.GaussianMixture([1.0], [0.0], [1.0]).eps_model(s)

    def model32(x, t):
        return model(x.double(), t.double()).float()

    x = ddpm(model32, torch.zeros(4, 1), s, s.timesteps(4, dtype=torch.float32))
    assert x.dtype == torch.float32


# --- bad input ---------------------------------------------------------------------------------


def test_bad_grids_and_inputs():
    s = DiscreteVP.linear(T=100)
    model, _ = gaussian_model(s)
    x = torch.zeros(4, 1, dtype=F64)
    with pytest.raises(ValueError, match=r"ts must be strictly decreasing"):
        ddpm(model, x, s, torch.tensor([50.0, 60.0, 0.0], dtype=F64))
    with pytest.raises(ValueError, match=r"ts must be strictly decreasing"):
        ddpm(model, x, s, torch.tensor([50.0, 50.0, 0.0], dtype=F64))
    with pytest.raises(ValueError, match=r"ts must be 1-D with at least 2 points"):
        ddpm(model, x, s, torch.tensor([50.0], dtype=F64))
    with pytest.raises(ValueError, match=r"ts must lie in \[0, 100\]"):
        ddpm(model, x, s, torch.tensor([150.0, 0.0], dtype=F64))
    with pytest.raises(ValueError, match=r"ts must be finite"):
        ddpm(model, x, s, torch.tensor([float("nan"), 0.0], dtype=F64))
    with pytest.raises(TypeError, match=r"ts must have the dtype of the samples"):
        ddpm(model, x, s, torch.tensor([50.0, 0.0], dtype=torch.float32))
    with pytest.raises(ValueError, match=r"x_T must be finite"):
        ddpm(model, torch.full((2, 1), float("inf"), dtype=F64), s, s.timesteps(2))
    with pytest.raises(TypeError, match=r"model must be callable"):
        ddpm(None, x, s, s.timesteps(2))
    with pytest.raises(TypeError, match=r"ts must be a 1-D torch.Tensor"):
        ddpm(model, x, s, [50.0, 0.0])


def test_bad_model_outputs():
    s = DiscreteVP.linear(T=100)
    x = torch.zeros(4, 1, dtype=F64)
    with pytest.raises(ValueError, match=r"model\(x, t\) must return x's shape \(4, 1\), got \(4,\)"):
        ddpm(lambda x, t: x[:, 0], x, s, s.timesteps(2))
    with pytest.raises(TypeError, match=r"model\(x, t\) must return x's dtype"):
        ddpm(lambda x, t: x.float(), x, s, s.timesteps(2))
    with pytest.raises(ValueError, match=r"model\(x, t\) must be finite"):
        ddpm(lambda x, t: x * float("nan"), x, s, s.timesteps(2))
    with pytest.raises(TypeError, match=r"model\(x, t\) must return a torch.Tensor"):
        ddpm(lambda x, t: 0.0, x, s, s.timesteps(2))
