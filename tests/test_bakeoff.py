import pytest
import torch

from diffnb import bakeoff, metrics, toy
from diffnb.schedules import LinearVP
from diffnb.sde import reference_ode_solve

F64 = torch.float64


@pytest.fixture(scope="module")
def problem():
    s, mix = LinearVP(), toy.seed_mixture_1d()
    model = mix.eps_model(s)
    x_T = torch.randn(64, 1, generator=torch.Generator().manual_seed(0), dtype=F64)
    x_ref = reference_ode_solve(model, x_T, s, 1.0, 1e-3)
    return s, model, x_T, x_ref


def test_bake_counts_calls_and_pairs_errors(problem):
    s, model, x_T, x_ref = problem
    rows = bakeoff.bake(["DDIM (eta = 0)", "DPM-Solver-2", "DPM-Solver-fast", "DDPM"], model, x_T, s, [6, 12],
                        score=lambda x: metrics.rms_error(x, x_ref), seeds=3, t_end=1e-3)
    assert rows["DDIM (eta = 0)"][12].nfe == 12 and rows["DPM-Solver-2"][12].nfe == 12
    assert rows["DPM-Solver-fast"][12].nfe <= 12
    ddpm = rows["DDPM"][6]
    assert len(ddpm.scores) == 3 and len(set(ddpm.scores)) == 3 and ddpm.sem > 0  # one run per seed
    ddim = rows["DDIM (eta = 0)"]
    assert len(ddim[6].scores) == 1 and ddim[6].sem == 0
    # Doubling the calls of a convergent deterministic sampler lowers its paired error.
    assert ddim[12].mean < ddim[6].mean
    assert bakeoff.beats(rows["DPM-Solver-2"][12], ddim[12])
    text = bakeoff.table(rows)
    assert "DPM-Solver-fast" in text and "±" in text and len(text.splitlines()) == 5
    header, *lines = text.splitlines()
    assert header.split() == ["6", "calls", "12", "calls"]
    assert lines[0].split()[-1] == "(12)" and lines[0].split()[-2] == f"{ddim[12].mean:.2e}"
    assert "± " not in lines[0] and f"± {ddpm.sem:.2e} (6)" in lines[3]
    assert len({len(line) for line in text.splitlines()[1:]}) == 1  # columns aligned
    only = bakeoff.table(rows, budgets=[12], fmt="{:.1f}")
    assert "6 calls" not in only and only.splitlines()[1].endswith("(12)")


def test_beats_needs_a_gap_beyond_the_noise():
    a = bakeoff.Cell("a", 10, 10, (1.0, 1.2, 0.8))
    b = bakeoff.Cell("b", 10, 10, (1.1, 1.3, 0.9))
    assert not bakeoff.beats(a, b) and not bakeoff.beats(b, a)
    assert bakeoff.beats(bakeoff.Cell("c", 10, 10, (0.1,)), bakeoff.Cell("d", 10, 10, (0.2,)))
    assert a.mean == pytest.approx(1.0) and a.sd == pytest.approx(0.2)


def test_bad_input(problem):
    s, model, x_T, _ = problem
    with pytest.raises(ValueError, match="name must be one of"):
        bakeoff.bake(["no such sampler"], model, x_T, s, [10], score=float)
    with pytest.raises(TypeError, match="score must be callable"):
        bakeoff.bake(["DDPM"], model, x_T, s, [10], score=None)
    with pytest.raises(ValueError, match="budgets must be at least 1"):
        bakeoff.bake(["DDPM"], model, x_T, s, [0], score=float)


def test_table_prints_the_chosen_budgets_narrowly():
    rows = {"Reverse SDE (Euler-Maruyama)": {
        b: bakeoff.Cell("x", b, b, (0.1 / b, 0.3 / b)) for b in (5, 10, 20, 50)},
        "DDIM": {5: bakeoff.Cell("DDIM", 5, 5, (0.2,))}}
    text = bakeoff.table(rows, (5, 10), fmt="{:.4f}")
    lines = text.splitlines()
    assert len(lines) == 3 and max(len(l) for l in lines) <= 75
    assert lines[0].split() == ["5", "calls", "10", "calls"]
    assert "0.0400 ± 0.0200 (5)" in lines[1] and "50 calls" not in text
    assert lines[2].split()[1:] == ["0.2000", "(5)", "-"]


@pytest.mark.parametrize("args, error, message", [
    ((None, 5, 5, (0.1,)), TypeError, r"name must be a str, got NoneType"),
    (("a", "5", 5, (0.1,)), TypeError, r"budget must be an int, got str"),
    (("a", 5, -1, (0.1,)), ValueError, r"nfe must be at least 0"),
    (("a", 5, 5, [0.1]), TypeError, r"scores must be a tuple of numbers, got list"),
    (("a", 5, 5, ()), ValueError, r"scores must hold at least one score"),
    (("a", 5, 5, (0.1, None)), TypeError, r"scores\[1\] must be a number, got NoneType"),
    (("a", 5, 5, (float("nan"),)), ValueError, r"scores\[0\] must be finite, got nan"),
])
def test_cell_checks_its_fields(args, error, message):
    with pytest.raises(error, match=message):
        bakeoff.Cell(*args)


def test_beats_and_table_refuse_bad_input_by_name(problem):
    s, model, x_T, _ = problem
    c = bakeoff.Cell("a", 5, 5, (0.1, 0.2))
    assert bakeoff.Cell("reference", 0, 0, (0.1,)).budget == 0  # a reference row has no budget
    for call, error, message in [
        (lambda: bakeoff.beats(None, c), TypeError, r"a must be a bakeoff.Cell, got NoneType"),
        (lambda: bakeoff.beats(c, 0.1), TypeError, r"b must be a bakeoff.Cell, got float"),
        (lambda: bakeoff.beats(c, c, z=float("nan")), ValueError, r"z must be finite and >= 0"),
        (lambda: bakeoff.beats(c, c, z="2"), TypeError, r"z must be a number"),
        (lambda: bakeoff.table(None), TypeError, r"rows must be a dict"),
        (lambda: bakeoff.table({}), ValueError, r"rows must hold at least one entry"),
        (lambda: bakeoff.table({"a": [c]}), TypeError, r"rows\['a'\] must be a dict \{budget: Cell\}"),
        (lambda: bakeoff.table({"a": {5: 0.1}}), TypeError, r"rows\['a'\]\[5\] must be a bakeoff.Cell"),
        (lambda: bakeoff.table({"a": {5: c}}, budgets="5"), TypeError, r"budgets must be a list of ints"),
        (lambda: bakeoff.table({"a": {5: c}}, fmt=None), TypeError, r"fmt must be a format string"),
        (lambda: bakeoff.table({"a": {5: c}}, fmt="{:.2q}"), ValueError, r"fmt must format one number"),
        (lambda: bakeoff.bake("DDPM", model, x_T, s, [5], score=float), TypeError, r"names must be a list"),
        (lambda: bakeoff.bake(["DDPM"], model, x_T, None, [5], score=float), TypeError,
         r"schedule must be a diffnb.schedules.GaussianPath"),
        (lambda: bakeoff.bake(["DDPM"], model, None, s, [5], score=float), TypeError, r"x_T must be a torch.Tensor"),
        (lambda: bakeoff.bake(["DDPM"], model, x_T, s, 5, score=float), TypeError, r"budgets must be a list"),
    ]:
        with pytest.raises(error, match=message):
            call()
    assert "0.10" in bakeoff.table({"a": {0: bakeoff.Cell("a", 0, 0, (0.1,))}}, budgets=[0], fmt="{:.2f}")
