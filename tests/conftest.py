import pytest
import torch
from hypothesis import settings

from diffnb import toy

# Deterministic property tests: the same examples on every machine and every run.
settings.register_profile("book", deadline=None, derandomize=True, database=None, max_examples=40, print_blob=True)
settings.load_profile("book")

# The tensors of the tests are small: one thread is fastest, and it avoids contention on a shared machine.
torch.set_num_threads(1)


class GaussianData:
    """Data N(m, sd^2) in 1-D and its exact eps, which is linear in x::

        eps*(x, t) = sigma_t (x - alpha_t m) / (alpha_t^2 sd^2 + sigma_t^2),
        E[x0 | x_t = x] = m + gain_t (x - alpha_t m),   gain_t = alpha_t sd^2 / (alpha_t^2 sd^2 + sigma_t^2)

    so every sampler step driven by it is affine in x and its noise, and the output is Gaussian with
    moments given by a scalar recursion. In y = x/alpha and rho = sigma/alpha,
    eps* = rho (y - m) / (sd^2 + rho^2): the same function on every Gaussian path.
    """

    def __init__(self, schedule, m=0.3, sd=0.5):
        self.schedule, self.m, self.sd = schedule, m, sd
        self.mixture = toy.GaussianMixture([1.0], [m], [sd])
        self.model = self.mixture.eps_model(schedule)

    def gain(self, t):
        a, s = float(self.schedule.alpha(t)), float(self.schedule.sigma(t))
        return a * self.sd**2 / (a**2 * self.sd**2 + s**2)

    def posterior_mean_x0(self, x, t):
        return self.m + self.gain(t) * (x - float(self.schedule.alpha(t)) * self.m)


@pytest.fixture(scope="session")
def gaussian_data():
    """A factory: ``gaussian_data(schedule, m=0.3, sd=0.5)`` -> ``GaussianData``."""
    return GaussianData


def _counting(model):
    """``(counted, calls)``: the model, and a list that gets one entry per call of it."""
    calls = []

    def counted(x, t):
        calls.append(1)
        return model(x, t)
    return counted, calls


@pytest.fixture(scope="session")
def counting():
    """``counting(model) -> (counted_model, calls)``, to count the model calls a sampler really makes."""
    return _counting
