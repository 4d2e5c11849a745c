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
