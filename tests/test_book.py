"""Book-level checks on the committed notebooks and the table of contents (no execution, a second or two).

- every notebook is at most 1 MB on disk (figures at 72-100 dpi and short outputs keep it there);
- every notebook in chapters/ is in _toc.yml, and every _toc.yml entry exists;
- every file of _toc.yml starts with a '# ' title (the PDF check looks for it in the PDF's text);
- a figure caption in a code cell's metadata is well formed: {"mystnb": {"figure": {"caption": ...,
  "name": "fig-..."}}}, names unique in the book, and the cell has exactly one display output (myst-nb
  wraps every display output of the cell in its own figure, which would repeat the caption and the name);
- `scripts/nbsource.py` turns every notebook into its percent script and back without losing a
  source, a tag or a figure caption.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted((ROOT / "chapters").glob("*.ipynb"))
MAX_BYTES = 1_000_000


def toc_entries() -> list[str]:
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text(encoding="utf-8"))
    found = [toc["root"]]

    def walk(node):
        if isinstance(node, list):
            for child in node:
                walk(child)
        elif isinstance(node, dict):
            if "file" in node:
                found.append(node["file"])
            for key in ("parts", "chapters", "sections"):
                walk(node.get(key) or [])

    walk(toc)
    return found


def source_of(entry: str) -> Path | None:
    for suffix in (".ipynb", ".md"):
        if (ROOT / (entry + suffix)).is_file():
            return ROOT / (entry + suffix)
    return None


def load(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_at_most_1_mb(path):
    size = path.stat().st_size
    assert size <= MAX_BYTES, (
        f"{path.name} is {size / 1e6:.2f} MB on disk, more than {MAX_BYTES / 1e6:.0f} MB: lower the figures' dpi, "
        f"use fewer animation frames or shorter outputs")


def test_every_chapter_is_in_the_toc():
    entries = set(toc_entries())
    missing = [p.name for p in NOTEBOOKS if f"chapters/{p.stem}" not in entries]
    assert not missing, f"notebooks in chapters/ that _toc.yml does not list: {missing}"


@pytest.mark.parametrize("entry", toc_entries())
def test_toc_entry_exists_and_has_a_title(entry):
    path = source_of(entry)
    assert path is not None, f"_toc.yml lists {entry}, which is neither {entry}.ipynb nor {entry}.md"
    if path.suffix == ".ipynb":
        lines = [line for cell in load(path)["cells"] if cell["cell_type"] == "markdown"
                 for line in "".join(cell["source"]).splitlines()]
    else:
        lines = path.read_text(encoding="utf-8").splitlines()
    assert any(line.startswith("# ") for line in lines), f"{path.name} has no '# ' title"


def figure_cells():
    for path in NOTEBOOKS:
        for i, cell in enumerate(load(path)["cells"]):
            fig = cell.get("metadata", {}).get("mystnb", {}).get("figure")
            if cell["cell_type"] == "code" and fig is not None:
                yield path, i, cell, fig


def test_figure_metadata_is_well_formed():
    problems, names = [], {}
    for path, i, cell, fig in figure_cells():
        where = f"{path.name} cell {i}"
        if not isinstance(fig, dict) or not str(fig.get("caption", "")).strip():
            problems.append(f"{where}: mystnb.figure needs a non-empty caption")
            continue
        name = fig.get("name", "")
        if not str(name).startswith("fig-"):
            problems.append(f"{where}: mystnb.figure.name {name!r} should start with 'fig-'")
        if name in names:
            problems.append(f"{where}: figure name {name!r} is also used in {names[name]}")
        names[name] = where
        displays = [o for o in cell.get("outputs", []) if o["output_type"] in ("display_data", "execute_result")]
        if len(displays) != 1:
            problems.append(f"{where}: a captioned cell needs exactly one display output (it has {len(displays)}); "
                            "each would become its own figure with the same caption and name")
    assert not problems, "\n".join(problems)


def _nbsource():
    import importlib.util

    spec = importlib.util.spec_from_file_location("nbsource", ROOT / "scripts" / "nbsource.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_percent_script_round_trip_keeps_sources_tags_and_figures(path):
    nbsource = _nbsource()
    back = nbsource.to_nb(nbsource.to_py(str(path)))
    cells = json.loads(path.read_text(encoding="utf-8"))["cells"]
    assert len(back.cells) == len(cells)
    for old, new in zip(cells, back.cells):
        assert new.cell_type == old["cell_type"] and new.source == "".join(old["source"])
        keep = {k: old["metadata"][k] for k in ("tags", "mystnb") if k in old["metadata"]}
        assert {k: new.metadata[k] for k in ("tags", "mystnb") if k in new.metadata} == keep


def test_percent_script_refuses_an_unknown_cell_option():
    with pytest.raises(ValueError, match="unknown cell option"):
        _nbsource().to_nb('# %% caption="x"\nprint(1)\n')
