import socket

import pytest
import torch

from diffnb import data, toy


def test_digits_shape_dtype_range_and_labels():
    images, labels = data.digits()
    assert images.shape == (1797, 64) and images.dtype == torch.float64
    assert labels.shape == (1797,) and labels.dtype == torch.int64
    assert float(images.min()) == -1.0 and float(images.max()) == 1.0
    pixels = (images + 1) * 8  # back to the 0..16 integers of the data set
    assert torch.equal(pixels, pixels.round()) and float(pixels.max()) == 16.0
    assert sorted(labels.unique().tolist()) == list(range(10))
    assert int(torch.bincount(labels).min()) > 170  # about 180 of each digit


def test_digits_are_sklearns_scaled():
    from sklearn.datasets import load_digits

    bunch = load_digits()
    images, labels = data.digits()
    assert torch.equal(images, torch.as_tensor(bunch.data, dtype=torch.float64) / 8 - 1)
    assert torch.equal(labels, torch.as_tensor(bunch.target))
    assert torch.equal(images.reshape(-1, *data.DIGITS_SHAPE)[5], torch.as_tensor(bunch.images[5]) / 8 - 1)


def test_digits_are_cached_and_returned_as_copies():
    a, la = data.digits()
    a[0, 0] = 123.0
    la[0] = -1
    b, lb = data.digits()
    assert float(b[0, 0]) != 123.0 and int(lb[0]) != -1


def test_digits_need_no_network(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("digits() tried to open a network connection")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(data, "_cache", {})
    images, labels = data.digits()
    assert images.shape == (1797, 64)


def test_digits_as_an_exact_model_memorise_the_training_set():
    images, labels = data.digits()
    emp = toy.EmpiricalMixture(images, labels=labels)
    g = torch.Generator().manual_seed(0)
    idx = torch.randint(1797, (50,), generator=g)
    alpha, sigma = 0.999, 0.02
    x = alpha * images[idx] + sigma * torch.randn(50, 64, generator=g, dtype=torch.float64)
    assert torch.allclose(emp.x0_hat(x, alpha, sigma), images[idx], atol=1e-9)
    assert torch.equal(emp.nearest(x / alpha)[1], idx)
    assert torch.equal(emp.class_posterior(x, alpha, sigma).argmax(1), labels[idx])


def test_images_are_rejected_unless_float():
    images, _ = data.digits()
    with pytest.raises(TypeError, match="images must be a floating-point tensor"):
        toy.EmpiricalMixture(images.long())
