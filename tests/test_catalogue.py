"""The sampler catalogue: unique styles, the identities it claims, its model-call counts and nominal orders."""

import pytest
import torch

from diffnb import catalogue, metrics, toy
from diffnb.catalogue import ENTRIES
from diffnb.schedules import LinearVP
from diffnb.sde import reference_ode_solve

F64 = torch.float64
S = LinearVP()
MODEL = toy.GaussianMixture([0.5, 0.5], [-0.6, 0.6], [0.25, 0.25]).eps_model(S)
X = torch.randn(12, 1, generator=torch.Generator().manual_seed(0), dtype=F64)
AVAILABLE = catalogue.names()



def test_entries_have_their_own_style_and_name():
    for attr in ("name", "label", "color", "marker"):
        values = [getattr(e, attr) for e in ENTRIES.values()]
        assert len(set(values)) == len(values), attr
    assert all(e.name == key for key, e in ENTRIES.items())
    for name in ENTRIES:
        st = catalogue.style(name)
        assert set(st) == {"color", "marker", "label"} and st["color"] == ENTRIES[name].color


def test_markers_are_visible_on_a_line():
    """No thin line markers ('|', '_', '1'-'4', '.', ','): drawn on a curve they disappear into it."""
    for e in ENTRIES.values():
        assert e.marker not in ("|", "_", "1", "2", "3", "4", ".", ","), e.name


def test_the_dpm_solver_family_and_the_sde_baseline_are_available():
    assert {"DDPM", "DDIM (eta = 0)", "DDIM (eta = 1)", "DPM-Solver-1", "DPM-Solver-2", "DPM-Solver-2 (Taylor)",
            "DPM-Solver-3", "DPM-Solver-3 (Taylor)", "DPM-Solver-fast", "DPM-Solver(2M)", "DPM-Solver(3M)",
            "DPM-Solver++(2S)", "DPM-Solver++(2M)", "DPM-Solver++(3M)", "SDE-DPM-Solver++(1)",
            "SDE-DPM-Solver++(2M)", "Reverse SDE (Euler-Maruyama)"} <= set(AVAILABLE)
    assert set(catalogue.names(stochastic=True)) | set(catalogue.names(stochastic=False)) == set(AVAILABLE)
    assert not any(ENTRIES[n].identity_of for n in catalogue.names(identities=False))


@pytest.mark.parametrize("name", [n for n, e in ENTRIES.items() if e.identity_of])
def test_each_identity_row_gives_the_same_samples(name):
    """DDIM(eta = 1) and SDE-DPM-Solver++(1) are DDPM given the same noise; DPM-Solver-1 and Euler are DDIM(eta = 0)."""
    other = ENTRIES[name].identity_of
    if not (catalogue.available(name) and catalogue.available(other)):
        pytest.skip(f"{name!r} or {other!r} is not implemented yet")
    ts = S.timesteps(15, "logsnr", t_end=1e-3)
    a = catalogue.run(name, MODEL, X, S, ts, generator=torch.Generator().manual_seed(3))
    b = catalogue.run(other, MODEL, X, S, ts, generator=torch.Generator().manual_seed(3))
    assert torch.allclose(a, b, rtol=1e-10, atol=1e-11)
    if ENTRIES[name].stochastic:  # not an accident of the noise: another seed gives other samples
        c = catalogue.run(other, MODEL, X, S, ts, generator=torch.Generator().manual_seed(4))
        assert float((b - c).abs().max()) > 1e-3


@pytest.mark.parametrize("name", AVAILABLE)
def test_model_calls_per_interval_and_the_budget_grid(counting, name):
    """On a grid that ends at sigma > 0 an entry spends `calls` per interval; on budget_grid(nfe) exactly
    nfe minus what does not fill an interval."""
    entry = ENTRIES[name]
    for nfe in (12, 13, 20):
        ts, kw = catalogue.budget_grid(name, S, nfe, t_end=1e-3)
        model, calls = counting(MODEL)
        catalogue.run(name, model, X, S, ts, generator=torch.Generator().manual_seed(0), **kw)
        if entry.budget:
            assert len(calls) == nfe
        else:
            assert len(calls) == (len(ts) - 1) * entry.calls == nfe - nfe % entry.calls


def test_run_passes_the_generator_to_stochastic_entries_only():
    for name in AVAILABLE:
        ts, kw = catalogue.budget_grid(name, S, 6, t_end=1e-3)
        a = catalogue.run(name, MODEL, X, S, ts, generator=torch.Generator().manual_seed(1), **kw)
        b = catalogue.run(name, MODEL, X, S, ts, generator=torch.Generator().manual_seed(2), **kw)
        assert torch.equal(a, b) != ENTRIES[name].stochastic, name


def test_nominal_orders_of_the_deterministic_entries(counting):
    """Measured against a high-accuracy ODE solve from the same x_T, against the model calls spent; identity
    rows and budget-dependent configurations are measured through the rows they equal or in test_dpm_solver."""
    ref = reference_ode_solve(MODEL, X, S, 1.0, 1e-3)
    for name in catalogue.names(stochastic=False, identities=False):
        entry = ENTRIES[name]
        if entry.budget:
            continue
        nfe, errs = [], []
        for budget in (40, 80, 160) if entry.order <= 3 else (80, 160, 320):  # higher orders reach it later
            ts, kw = catalogue.budget_grid(name, S, budget, t_end=1e-3)
            model, calls = counting(MODEL)
            errs.append(metrics.rms_error(catalogue.run(name, model, X, S, ts, **kw), ref))
            nfe.append(len(calls))
        slope = metrics.fit_order(nfe[1:], errs[1:])
        assert abs(slope - entry.order) < 0.2, (name, slope, errs)


def test_bad_input(monkeypatch):
    ts = S.timesteps(4, t_end=1e-3)
    with pytest.raises(ValueError, match=r"name must be one of the catalogue's entries \[.*'DDPM'.*\], got 'DDPM2'"):
        catalogue.get("DDPM2")
    with pytest.raises(TypeError, match="name must be a str, got int"):
        catalogue.style(3)
    with pytest.raises(ValueError, match=r"'DPM-Solver-fast' takes its orders from the budget of model calls"):
        catalogue.run("DPM-Solver-fast", MODEL, X, S, ts)
    with pytest.raises(ValueError, match=r"nfe=2 is less than one interval of 'DPM-Solver-3' \(3 model calls\)"):
        catalogue.budget_grid("DPM-Solver-3", S, 2)
    with pytest.raises(ValueError, match="nfe must be at least 1"):
        catalogue.budget_grid("DDPM", S, 0)
    with pytest.raises(TypeError, match="stochastic must be a bool"):
        catalogue.names(stochastic="yes")
    fake = catalogue._e("Later", "Later", "not_yet:sampler", 1, 1, "#000000", ".")
    monkeypatch.setitem(ENTRIES, "Later", fake)
    assert not catalogue.available("Later") and "Later" not in catalogue.names()
    with pytest.raises(NotImplementedError, match=r"'Later' needs diffnb.not_yet.sampler, which is not available"):
        catalogue.run("Later", MODEL, X, S, ts)


def test_entry_checks_its_fields():
    import dataclasses

    good = ENTRIES["DDPM"]
    for change, error, message in [
        ({"name": None}, TypeError, r"name must be a str, got NoneType"),
        ({"label": 1}, TypeError, r"label must be a str"),
        ({"function": "samplers.ddpm"}, ValueError, r"function must be 'module:function'"),
        ({"order": 0}, ValueError, r"order must be at least 1"),
        ({"calls": 1.0}, TypeError, r"calls must be an int"),
        ({"color": None}, TypeError, r"color must be a str"),
        ({"marker": None}, TypeError, r"marker must be a matplotlib marker"),
        ({"stochastic": 1}, TypeError, r"stochastic must be a bool"),
        ({"identity_of": 3}, TypeError, r"identity_of must be an entry name"),
        ({"kwargs": None}, TypeError, r"kwargs must be a mapping"),
        ({"budget": 3}, TypeError, r"budget must be callable"),
    ]:
        with pytest.raises(error, match=message):
            dataclasses.replace(good, **change)
    assert dataclasses.replace(good, name="copy") .name == "copy"
    with pytest.raises(TypeError, match=r"schedule must be a diffnb.schedules.GaussianPath"):
        catalogue.budget_grid("DDPM", None, 10)
