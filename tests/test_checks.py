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
