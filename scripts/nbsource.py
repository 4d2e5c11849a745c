"""Convert a chapter between its executed notebook and a plain "percent" script, for editing.

    python scripts/nbsource.py to-py chapters/01_ddpm.ipynb  > /tmp/01_ddpm.py
    python scripts/nbsource.py to-nb /tmp/01_ddpm.py chapters/01_ddpm.ipynb

In the script, ``# %%`` starts a code cell and ``# %% [markdown]`` a markdown cell whose lines are
prefixed by ``# ``. A cell may carry tags and a code cell a numbered figure, as JSON after the marker:
``# %% tags=["hide-input"] figure={"caption": "...", "name": "fig-..."}`` (the figure is the cell's
``mystnb.figure`` metadata). The notebook is the source of the book; ``to-nb`` writes it unexecuted,
so run ``make execute`` afterwards.
"""

import json
import re
import sys

import nbformat

HEADER = re.compile(r"^# %%(?P<md> \[markdown\])?(?P<rest>(?: .*)?)$")
KEYS = ("tags", "figure")


def parse_options(rest: str) -> dict:
    """``tags=[...] figure={...}`` (JSON values, in any order) -> {"tags": [...], "figure": {...}}."""
    options, decoder, i = {}, json.JSONDecoder(), 0
    while i < len(rest):
        if rest[i] == " ":
            i += 1
            continue
        key, eq, _ = rest[i:].partition("=")
        if not eq or key not in KEYS:
            raise ValueError(f"unknown cell option at {rest[i:]!r}; expected one of {KEYS} as key=JSON")
        options[key], i = decoder.raw_decode(rest, i + len(key) + 1)
    return options


def to_py(path):
    nb = nbformat.read(path, as_version=4)
    out = []
    for cell in nb.cells:
        tags = cell.metadata.get("tags", [])
        figure = cell.metadata.get("mystnb", {}).get("figure")
        suffix = f" tags={json.dumps(tags)}" if tags else ""
        suffix += f" figure={json.dumps(figure, ensure_ascii=False)}" if figure else ""
        if cell.cell_type == "markdown":
            out.append("# %% [markdown]" + suffix)
            out += [("# " + line).rstrip() for line in cell.source.splitlines()]
        else:
            out.append("# %%" + suffix)
            out += cell.source.splitlines()
        out.append("")
    return "\n".join(out)


def to_nb(text):
    cells, kind, options, lines = [], None, {}, []

    def flush():
        if kind is None:
            return
        body = "\n".join(lines).strip("\n")
        if kind == "markdown":
            body = "\n".join(l[2:] if l.startswith("# ") else l.lstrip("#") for l in body.splitlines())
            cell = nbformat.v4.new_markdown_cell(body)
        else:
            cell = nbformat.v4.new_code_cell(body)
        if options.get("tags"):
            cell.metadata["tags"] = options["tags"]
        if options.get("figure"):
            cell.metadata["mystnb"] = {"figure": options["figure"]}
        cells.append(cell)

    for line in text.splitlines():
        m = HEADER.match(line)
        if m:
            flush()
            kind = "markdown" if m.group("md") else "code"
            options = parse_options(m.group("rest"))
            lines = []
        else:
            lines.append(line)
    flush()
    nb = nbformat.v4.new_notebook(cells=cells)
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.metadata["language_info"] = {"name": "python"}
    return nb


if __name__ == "__main__":
    cmd = sys.argv[1] if len(sys.argv) > 1 else ""
    if cmd == "to-py" and len(sys.argv) == 3:
        print(to_py(sys.argv[2]))
    elif cmd == "to-nb" and len(sys.argv) == 4:
        nbformat.write(to_nb(open(sys.argv[2]).read()), sys.argv[3])
    else:
        sys.exit(__doc__)
