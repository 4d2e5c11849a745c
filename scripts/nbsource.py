"""Convert a chapter between its executed notebook and a plain "percent" script, for editing.

    python scripts/nbsource.py to-py chapters/01_ddpm.ipynb  > /tmp/01_ddpm.py
    python scripts/nbsource.py to-nb /tmp/01_ddpm.py chapters/01_ddpm.ipynb

In the script, ``# %%`` starts a code cell and ``# %% [markdown]`` a markdown cell whose lines are
prefixed by ``# ``. A code cell may carry tags: ``# %% tags=["hide-input"]``. The notebook is the
source of the book; ``to-nb`` writes it unexecuted, so run ``make execute`` afterwards.
"""

import json
import re
import sys

import nbformat

HEADER = re.compile(r"^# %%(?P<md> \[markdown\])?(?: tags=(?P<tags>\[.*\]))?\s*$")


def to_py(path):
    nb = nbformat.read(path, as_version=4)
    out = []
    for cell in nb.cells:
        tags = cell.metadata.get("tags", [])
        suffix = f" tags={json.dumps(tags)}" if tags else ""
        if cell.cell_type == "markdown":
            out.append("# %% [markdown]" + suffix)
            out += [("# " + line).rstrip() for line in cell.source.splitlines()]
        else:
            out.append("# %%" + suffix)
            out += cell.source.splitlines()
        out.append("")
    return "\n".join(out)


def to_nb(text):
    cells, kind, tags, lines = [], None, [], []

    def flush():
        if kind is None:
            return
        body = "\n".join(lines).strip("\n")
        if kind == "markdown":
            body = "\n".join(l[2:] if l.startswith("# ") else l.lstrip("#") for l in body.splitlines())
            cell = nbformat.v4.new_markdown_cell(body)
        else:
            cell = nbformat.v4.new_code_cell(body)
        if tags:
            cell.metadata["tags"] = tags
        cells.append(cell)

    for line in text.splitlines():
        m = HEADER.match(line)
        if m:
            flush()
            kind = "markdown" if m.group("md") else "code"
            tags = json.loads(m.group("tags")) if m.group("tags") else []
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
