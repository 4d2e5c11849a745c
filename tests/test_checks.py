import math
import warnings

import pytest
import torch

from diffnb import _checks


def test_finite_passes_finite_tensors_silently_even_with_grad():
    x = torch.linspace(-1, 1, 5, dtype=torch.float64).requires_grad_()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the fast path must not convert a grad tensor to a scalar
        assert _checks.finite(x, "x") is x


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_finite_names_the_argument(bad):
    x = torch.zeros(4, dtype=torch.float64)
    x[2] = bad
    with pytest.raises(ValueError, match="eps_hat must be finite"):
        _checks.finite(x, "eps_hat")


def test_finite_falls_back_when_the_sum_overflows():
    x = torch.full((4,), 1e308, dtype=torch.float64)  # finite entries, infinite sum
    assert _checks.finite(x, "x") is x


def test_gaussian_path_accepts_every_path_and_names_the_argument():
    from diffnb.schedules import VE, DiscreteVP, FlowMatching, LinearVP

    for s in (DiscreteVP.linear(T=10), LinearVP(), VE(), FlowMatching()):
        assert _checks.gaussian_path(s) is s
    for bad, kind in ((None, "NoneType"), ("linear", "str"), (torch.ones(3), "Tensor")):
        with pytest.raises(TypeError, match=rf"schedule must be a diffnb.schedules.GaussianPath .*got {kind}"):
            _checks.gaussian_path(bad)
    with pytest.raises(TypeError, match="teacher must be a diffnb.schedules.GaussianPath"):
        _checks.gaussian_path(1.0, "teacher")


def test_flag_and_choice():
    assert _checks.flag(True, "f") is True
    with pytest.raises(TypeError, match="f must be a bool, got int"):
        _checks.flag(1, "f")
    assert _checks.choice("a", "opt", ("a", "b")) == "a"
    with pytest.raises(TypeError, match="opt must be a str, got NoneType"):
        _checks.choice(None, "opt", ("a", "b"))
    with pytest.raises(ValueError, match=r"opt must be one of \['a', 'b'\], got 'c'"):
        _checks.choice("c", "opt", ("a", "b"))


def test_real_number_takes_numbers_and_one_element_tensors_only():
    from diffnb._checks import real_number

    assert real_number(2, "w") == 2.0 and real_number(torch.tensor([0.5]), "w") == 0.5
    with pytest.raises(TypeError, match="w must be a number, got bool"):
        real_number(True, "w")
    with pytest.raises(TypeError, match="one-element floating tensor"):
        real_number(torch.ones(2), "w")
    with pytest.raises(TypeError, match="one-element floating tensor"):
        real_number(torch.tensor(1), "w")
    with pytest.raises(ValueError, match="w must be finite"):
        real_number(float("inf"), "w")


def test_has_methods_names_the_missing_method():
    from diffnb._checks import has_methods

    class Scheduler:
        def step(self):
            pass

    s = Scheduler()
    assert has_methods(s, "scheduler", ("step",), "a scheduler") is s
    with pytest.raises(TypeError, match=r"scheduler must have a set_timesteps\(\) method \(a scheduler\), "
                                        r"got Scheduler"):
        has_methods(s, "scheduler", ("step", "set_timesteps"), "a scheduler")
