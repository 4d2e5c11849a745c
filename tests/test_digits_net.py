import math

import pytest
import torch

from diffnb import data, digits_demo, digits_net, metrics
from diffnb.forward import q_sample


@pytest.fixture(scope="module")
def saved():
    return torch.load(digits_net.WEIGHTS, weights_only=True)


def test_weights_file_is_small(saved):
    assert digits_net.WEIGHTS.stat().st_size < 1_000_000
    assert saved["recipe"] == digits_net.RECIPE
    assert saved["classifier_recipe"] == digits_net.CLASSIFIER_RECIPE


def test_shipped_denoiser_comes_from_the_recipe(saved):
    """A short regeneration reproduces the fingerprint saved with the weights (deterministic recipe)."""
    short, losses = digits_net.train_denoiser(saved["fingerprint"]["steps"], progress=False)
    assert len(losses) == saved["fingerprint"]["steps"]
    assert math.isclose(digits_net.fingerprint(short), saved["fingerprint"]["denoiser"], rel_tol=1e-6)


def test_shipped_classifier_comes_from_the_recipe(saved):
    short, _ = digits_net.train_classifier(saved["fingerprint"]["steps"], progress=False)
    assert math.isclose(digits_net.fingerprint(short), saved["fingerprint"]["classifier"], rel_tol=1e-6)


def test_eps_model_follows_the_sampler_contract():
    net = digits_net.denoiser()
    model = digits_net.eps_model(net)
    x = torch.randn(7, 64, dtype=torch.float64)
    for t in (torch.full((7,), 500.0, dtype=torch.float64), torch.tensor([500.0], dtype=torch.float64)):
        out = model(x, t)
        assert out.shape == x.shape and out.dtype == torch.float64 and not out.requires_grad
    # float32 arithmetic against float64 arithmetic of the same weights: rounding only
    out64 = digits_net.eps_model(net, dtype=torch.float64)(x, t)
    assert float((out - out64).abs().max()) < 1e-4
    assert next(net.parameters()).dtype == torch.float32  # the float64 copy leaves the net alone


def test_labels_change_the_prediction_and_are_checked():
    net = digits_net.denoiser()
    x = torch.randn(4, 64, dtype=torch.float64)
    t = torch.full((4,), 300.0, dtype=torch.float64)
    uncond = digits_net.eps_model(net)(x, t)
    as_int = digits_net.eps_model(net, labels=3)(x, t)
    as_tensor = digits_net.eps_model(net, labels=torch.full((4,), 3))(x, t)
    assert torch.equal(as_int, as_tensor) and not torch.allclose(as_int, uncond)
    with pytest.raises(ValueError, match="labels must have shape"):
        digits_net.eps_model(net, labels=torch.zeros(3, dtype=torch.int64))(x, t)
    with pytest.raises(TypeError, match="labels must be None"):
        digits_net.eps_model(net, labels=True)
    with pytest.raises(TypeError, match="dtype must be"):
        digits_net.eps_model(net, dtype=torch.float16)
    with pytest.raises(TypeError, match="net must be a TinyUNet"):
        digits_net.eps_model(torch.nn.Linear(64, 64))


def test_denoiser_is_better_than_predicting_zero_noise():
    """The trained loss is well below E|eps|^2 = 1 per pixel at every noise level, paired draws."""
    net, schedule = digits_net.denoiser(), digits_net.digits_schedule()
    model = digits_net.eps_model(net)
    X, _ = data.digits()
    g = torch.Generator().manual_seed(0)
    for t0 in (20.0, 200.0, 800.0):
        t = torch.full((500,), t0, dtype=torch.float64)
        x_t, eps = q_sample(schedule, X[:500], t, generator=g)
        assert float(((model(x_t, t) - eps) ** 2).mean()) < 0.8


def test_classifier_is_accurate_on_held_out_digits():
    clf = digits_net.classifier()
    X, y = data.digits()
    train, test = digits_net.classifier_split()
    assert train.numel() + test.numel() == X.shape[0]
    assert not set(train.tolist()) & set(test.tolist())
    assert float((clf.predict(X[test]) == y[test]).double().mean()) > 0.95
    f = clf.features(X[:5])
    assert f.shape == (5, digits_net.FEATURES) and f.dtype == torch.float64


def test_neighbours_against_brute_force():
    g = torch.Generator().manual_seed(1)
    X = torch.randn(30, 5, generator=g, dtype=torch.float64)
    x = torch.randn(8, 5, generator=g, dtype=torch.float64)
    nb = digits_demo.neighbours(x, X)
    D = torch.cdist(x, X).sort(1)
    assert torch.allclose(nb.d1, D.values[:, 0]) and torch.allclose(nb.d2, D.values[:, 1])
    assert torch.equal(nb.index, D.indices[:, 0])
    loo = digits_demo.leave_one_out(X)
    D = torch.cdist(X, X) + torch.diag(torch.full((30,), float("inf"), dtype=torch.float64))
    assert torch.allclose(loo.d1, D.min(1).values)
    copies = digits_demo.neighbours(X[:4] + 1e-9, X)
    assert bool((copies.ratio < 1e-6).all()) and torch.equal(copies.index, torch.arange(4))


def test_paired_share_gap_and_bootstrap():
    a = torch.tensor([True] * 30 + [False] * 70)
    b = torch.tensor([True] * 10 + [False] * 90)
    gap, sd = digits_demo.paired_share_gap(a, b)
    assert math.isclose(gap, 0.2) and math.isclose(sd, math.sqrt(20 - 100 * 0.04) / 100)
    assert digits_demo.paired_share_gap(a, a) == (0.0, 0.0)
    with pytest.raises(ValueError, match="same length"):
        digits_demo.paired_share_gap(a, b[:5])
    g = torch.Generator().manual_seed(3)
    fa = torch.randn(200, 2, generator=g, dtype=torch.float64)
    sd = digits_demo.paired_bootstrap_sd(lambda f: float(f.mean()), fa, fa + 0.5, n_boot=50)
    assert sd < 1e-12  # a constant shift: the paired difference does not vary
    assert digits_demo.paired_bootstrap_sd(lambda f: float(f.mean()), fa, -fa, n_boot=200) > 0.05


def test_mosaic_layout_and_checks():
    images = torch.stack([torch.full((64,), float(k) / 4 - 1) for k in range(5)])
    m = digits_demo.mosaic(images, ncol=3, pad=1, fill=7.0)
    assert m.shape == (2 * 9 + 1, 3 * 9 + 1)
    assert m[1, 1] == -1.0 and m[1 + 9, 1 + 9] == images[4, 0] and m[0, 0] == 7.0
    with pytest.raises(ValueError, match=r"shape \(n, 64\)"):
        digits_demo.mosaic(torch.zeros(2, 10), ncol=2)


def test_compact_table_is_narrow_and_marks_short_runs():
    from diffnb.bakeoff import Cell

    rows = {"DPM-Solver-3": {5: Cell("DPM-Solver-3", 5, 3, (380.0,)), 10: Cell("DPM-Solver-3", 10, 9, (2.0,))},
            "DDIM (eta = 0)": {5: Cell("DDIM (eta = 0)", 5, 5, (3.0,)), 10: Cell("DDIM (eta = 0)", 10, 10, (2.0,))}}
    text = digits_demo.compact_table(rows)
    lines = text.splitlines()
    assert max(len(line) for line in lines) <= 18 + 2 * 12
    assert "3.8e+02 (3)" in lines[1] and "2 (9)" in lines[1] and "(" not in lines[2][18:]


def test_write_weights_round_trip(tmp_path):
    """The entry point's writer, with a few steps, into a scratch file: the format the loaders read."""
    path = tmp_path / "w.pt"
    payload = digits_net.write_weights(path, steps=120, classifier_steps=5, progress=False)
    saved = torch.load(path, weights_only=True)
    assert set(saved) == {"denoiser", "classifier", "recipe", "classifier_recipe", "loss_curve", "fingerprint"}
    assert saved["loss_curve"].shape == (1,) and saved["fingerprint"] == payload["fingerprint"]
    net = digits_net.TinyUNet(**{k: saved["recipe"][k] for k in ("c1", "c2", "emb", "seed")})
    net.load_state_dict(saved["denoiser"])
    shipped = torch.load(digits_net.WEIGHTS, weights_only=True)
    assert set(shipped) == set(saved) and shipped["fingerprint"] == saved["fingerprint"]


def test_image_rows_labels_rows_and_columns():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots()
    ims = torch.zeros(3, 64, dtype=torch.float64)
    digits_demo.image_rows(ax, [("a", ims), ("b", ims[:2])],
                           col_labels=["1", "2", "3"], col_title="t")
    texts = [t.get_text() for t in ax.texts]
    assert texts == ["a", "b", "1", "2", "3", "t"]
    # one row of 8x8 tiles per entry, the short row padded
    assert ax.images[0].get_array().shape == (2 * 9 + 1, 3 * 9 + 1)
    with pytest.raises(ValueError, match="col_labels"):
        digits_demo.image_rows(ax, [("a", ims)], col_labels=["1"])
    with pytest.raises(ValueError, match="rows"):
        digits_demo.image_rows(ax, [])
    plt.close(fig)


# --- digits_demo: bad input is refused by name -----------------------------------------------------
def _bad_digits_demo_calls():
    from diffnb.bakeoff import Cell

    d = torch.tensor([0.5, 1.0], dtype=torch.float64)
    i = torch.tensor([3, 4])
    cell = Cell("DDIM (eta = 0)", 5, 5, (3.0,))
    return [
        (lambda: digits_demo.Neighbours(None, d, i), TypeError, "d1 must be a torch.Tensor"),
        (lambda: digits_demo.Neighbours(d, d * math.nan, i), ValueError, "d2 must be finite"),
        (lambda: digits_demo.Neighbours(-d, d, i), ValueError, "d1 must hold distances (>= 0)"),
        (lambda: digits_demo.Neighbours(d, d, d), TypeError, "index must be an integer tensor"),
        (lambda: digits_demo.Neighbours(d, d, "i"), TypeError, "index must be a torch.Tensor"),
        (lambda: digits_demo.Neighbours(d, d[:1], i), ValueError, "d1, d2 and index must have the same shape"),
        (lambda: digits_demo.compact_table(None), TypeError, "rows must be a dict"),
        (lambda: digits_demo.compact_table({"a": [cell]}), TypeError, "rows must map entry names"),
        (lambda: digits_demo.compact_table({"a": {5: 3.0}}), TypeError, "rows['a'] must map int budgets"),
        (lambda: digits_demo.compact_table({"a": {5: cell}}, fmt=None), TypeError, "fmt must be a format string"),
    ]


@pytest.mark.parametrize("k", range(10))
def test_digits_demo_bad_input_raises_naming_the_argument(k):
    import re

    calls = _bad_digits_demo_calls()
    assert len(calls) == 10
    call, error, message = calls[k]
    with pytest.raises(error, match=re.escape(message)):
        call()


def test_neighbours_is_still_a_named_tuple():
    nb = digits_demo.Neighbours(torch.tensor([1.0]), torch.tensor([2.0]), torch.tensor([0]))
    d1, d2, index = nb
    assert nb.d1 is d1 and float(nb.ratio) == 0.5 and nb._fields == ("d1", "d2", "index")


def test_fingerprint_refuses_bad_input_by_name():
    with pytest.raises(TypeError, match=r"net must be a torch.nn.Module, got str"):
        digits_net.fingerprint("x")
    with pytest.raises(ValueError, match=r"net must have parameters"):
        digits_net.fingerprint(torch.nn.Identity())
    net = torch.nn.Linear(2, 1).requires_grad_(False)
    net.bias.fill_(float("inf"))
    with pytest.raises(ValueError, match=r"net's parameters must be finite"):
        digits_net.fingerprint(net)
