import pytest
import torch

from diffnb import forward, metrics, toy
from diffnb.samplers import ddpm, predict_eps
from diffnb.schedules import VE, DiscreteVP, FlowMatching, LinearVP

F64 = torch.float64


def test_ddpm_step_is_the_algorithm_box(gaussian_data):
    """One step equals Ho et al.'s Algorithm 2 line: x_{t-1} = (x_t - beta/sqrt(1-abar) eps)/sqrt(1-beta) + sigma z."""
    s = DiscreteVP.linear()
    model = gaussian_data(s).model
    x = torch.randn(64, 1, generator=torch.Generator().manual_seed(0), dtype=F64)
    t, n = torch.tensor([700.0, 699.0], dtype=F64), 700
    out = ddpm(model, x, s, t, generator=torch.Generator().manual_seed(1))
    z = torch.randn(x.shape, generator=torch.Generator().manual_seed(1), dtype=F64)
    beta, abar, abar_prev = s.betas[n - 1], s.alpha_bar(700.0), s.alpha_bar(699.0)
    eps = predict_eps(model, x, t[0])
    expected = (x - beta / torch.sqrt(1 - abar) * eps) / torch.sqrt(1 - beta) + torch.sqrt(
        (1 - abar_prev) / (1 - abar) * beta) * z
    assert torch.allclose(out, expected, rtol=1e-12, atol=1e-12)


def _affine_chain(data, ts, x, noises):
    """DDPM on Gaussian data restated: x_s = c_xt x + c_x0 E[x0 | x] + sqrt(v) z, with E[x0 | x] in closed form
    (not from the eps model), applied to given samples and noises; also the exact (mean, var) of the output
    for x_T ~ N(0, 1) from the scalar recursion of the affine steps."""
    sch, m, sd = data.schedule, data.m, data.sd
    cxt, cx0, v = (c.tolist() for c in forward.posterior_coefficients(sch, ts[:-1], ts[1:]))
    a, sg = sch.alpha(ts[:-1]), sch.sigma(ts[:-1])
    gain, a = (a * sd**2 / (a**2 * sd**2 + sg**2)).tolist(), a.tolist()
    mean, var = 0.0, 1.0
    for i, z in enumerate(noises):
        x = cxt[i] * x + cx0[i] * (m + gain[i] * (x - a[i] * m)) + v[i] ** 0.5 * z
        A, B = cxt[i] + cx0[i] * gain[i], cx0[i] * (m - gain[i] * a[i] * m)
        mean, var = A * mean + B, A**2 * var + v[i]
    return x, mean, var


@pytest.mark.parametrize("n_steps", [1000, 50, 5])
def test_ddpm_on_gaussian_data_is_the_exact_affine_chain(gaussian_data, n_steps):
    """For data N(m, s^2) and the exact eps each step is affine in x and z: given the same noise, ddpm must
    reproduce the restated chain sample by sample, and the chain's exact output law N(mean, var) follows from
    a scalar recursion (1000 steps: the data distribution; 5 respaced steps: too little variance)."""
    sch = DiscreteVP.linear()
    data = gaussian_data(sch)
    ts = sch.timesteps(n_steps)
    x_T = torch.randn(16, 1, generator=torch.Generator().manual_seed(0), dtype=F64)
    g = torch.Generator().manual_seed(1)
    noises = [torch.randn(x_T.shape, generator=g, dtype=F64) for _ in range(n_steps)]
    restated, mean, var = _affine_chain(data, ts, x_T, noises)
    out = ddpm(data.model, x_T, sch, ts, generator=torch.Generator().manual_seed(1))
    assert torch.allclose(out, restated, rtol=0, atol=1e-12)
    if n_steps == 1000:  # the full chain is close to the data distribution
        assert abs(var**0.5 - data.sd) < 0.01 and abs(mean - data.m) < 0.01
    if n_steps == 5:  # a few respaced steps lose variance: x0_hat is a mean, not a sample
        assert var**0.5 < 0.8 * data.sd


@pytest.mark.parametrize("schedule", [LinearVP(), VE(), FlowMatching()], ids=repr)
def test_ddpm_on_every_gaussian_path_is_the_exact_affine_chain(gaussian_data, schedule):
    """The posterior step needs no alpha^2 + sigma^2 = 1: on VE and flow matching too, ddpm is the restated chain."""
    data = gaussian_data(schedule)
    t_start = 0.98 if isinstance(schedule, FlowMatching) else schedule.t_max
    ts = schedule.timesteps(12, "quadratic", t_start=t_start, t_end=schedule.t_min)
    x_T = torch.randn(16, 1, generator=torch.Generator().manual_seed(0), dtype=F64) * float(schedule.sigma(t_start))
    g = torch.Generator().manual_seed(1)
    restated, _, _ = _affine_chain(data, ts, x_T, [torch.randn(x_T.shape, generator=g, dtype=F64) for _ in range(12)])
    out = ddpm(data.model, x_T, schedule, ts, generator=torch.Generator().manual_seed(1))
    assert torch.allclose(out, restated, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("n_steps", [50, 5])
def test_ddpm_on_gaussian_data_has_the_recursions_moments(gaussian_data, n_steps):
    """Monte Carlo: the samples have the mean and variance of the exact recursion (the noise is N(0, 1))."""
    sch = DiscreteVP.linear()
    data = gaussian_data(sch)
    ts = sch.timesteps(n_steps)
    _, mean, var = _affine_chain(data, ts, 0.0, [0.0] * n_steps)
    g = torch.Generator().manual_seed(0)
    x = ddpm(data.model, torch.randn(40_000, 1, generator=g, dtype=F64), sch, ts, generator=g)
    assert abs(float(x.mean()) - mean) < 5 * (var / 40_000) ** 0.5
    assert abs(float(x.var()) / var - 1) < 0.03


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


def test_callback_receives_each_step(gaussian_data):
    s = LinearVP()
    model = gaussian_data(s).model
    seen = []
    ddpm(model, torch.zeros(3, 1, dtype=F64), s, s.timesteps(5), generator=torch.Generator().manual_seed(0),
         callback=seen.append)
    assert [d["i"] for d in seen] == list(range(5))
    assert all({"t", "t_prev", "x", "x0_hat", "eps_hat"} <= set(d) for d in seen)
    assert float(seen[-1]["t"]) == 0.0


def test_last_step_to_t0_returns_x0_hat(gaussian_data):
    s = DiscreteVP.linear()
    model = gaussian_data(s).model
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


def test_bad_grids_and_inputs(gaussian_data):
    s = DiscreteVP.linear(T=100)
    model = gaussian_data(s).model
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
    with pytest.raises(TypeError, match=r"schedule must be a diffnb.schedules.GaussianPath .*got NoneType"):
        ddpm(model, x, None, s.timesteps(2))
    with pytest.raises(TypeError, match=r"schedule must be a diffnb.schedules.GaussianPath .*got str"):
        ddpm(model, x, "linear", s.timesteps(2))
    fm = FlowMatching()
    with pytest.raises(ValueError, match=r"ts\[0\] = 1 has alpha_t = 0 \(log_snr = -inf\) on FlowMatching\(\)"):
        ddpm(model, x, fm, fm.timesteps(4))


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
