"""Check the PDF edition: enough pages, every chapter's title in its text, no raw TeX outside code.

Usage: python scripts/pdf_check.py [_build/pdf/book.pdf] [--min-pages N]

Reads the PDF with poppler's command-line tools (Debian's poppler-utils): ``pdfinfo`` for the page
count, ``pdftotext`` for the text, ``pdftohtml -xml`` for the text with its fonts.

- Pages: at least ``--min-pages`` (default: 8 per notebook in ``_toc.yml``, and at least 40), so a
  print that stopped after the front matter, or lost the chapters, fails.
- Titles: the first heading of every file in ``_toc.yml`` (notebooks: the first ``# `` line of a
  markdown cell; markdown files: the first ``# `` line) must occur in the extracted text
  (whitespace and ligatures normalised; inline math and markup in a title are skipped, the words
  around them must be there).
- Raw TeX: no TeX delimiters or commands (``$$``, ``\\frac``, ``\\(``, ``$x_t$``, ...) in text set in a
  proportional font. Text in a monospace font is code or a code cell's output, where TeX inside a
  string is legitimate (``ax.set_xlabel(r"$\\sigma$")``); math that MathJax typeset is set in its own
  fonts and never reads as TeX.
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import unicodedata
import xml.etree.ElementTree as ET
from pathlib import Path

import nbformat
import yaml
# The browser check's pattern: delimiters, environments, $...$ with TeX, bare common TeX commands.
from browser_check import RAW_TEX

ROOT = Path(__file__).resolve().parent.parent


def toc_files(toc_path: Path) -> list[str]:
    """Every file of _toc.yml in reading order (root first), without suffix."""
    toc = yaml.safe_load(toc_path.read_text(encoding="utf-8"))
    files = [toc["root"]]

    def walk(node):
        if isinstance(node, dict):
            if "file" in node:
                files.append(node["file"])
            for key in ("parts", "chapters", "sections"):
                for child in node.get(key, []) or []:
                    walk(child)
        elif isinstance(node, list):
            for child in node:
                walk(child)

    walk(toc)
    return files


def first_heading(path: Path) -> str | None:
    if path.suffix == ".ipynb":
        lines = [line for cell in nbformat.read(path, as_version=4).cells if cell.cell_type == "markdown"
                 for line in cell.source.splitlines()]
    else:
        lines = path.read_text(encoding="utf-8").splitlines()
    for line in lines:
        if line.startswith("# "):
            return line[2:].strip()
    return None


def resolve(base: str) -> Path | None:
    for suffix in (".ipynb", ".md"):
        if (ROOT / (base + suffix)).is_file():
            return ROOT / (base + suffix)
    return None


# Sphinx's smart quotes and dashes, and their plain source forms, compare equal.
SMART = str.maketrans({"\u2018": "'", "\u2019": "'", "\u201c": '"', "\u201d": '"', "\u2013": "-", "\u2014": "-"})


def normalise(text: str) -> str:
    text = unicodedata.normalize("NFKC", text).replace("\u00ad", "").translate(SMART)
    text = text.replace("---", "-").replace("--", "-")
    return re.sub(r"\s+", " ", text).strip()


def title_fragments(title: str) -> list[str]:
    """The plain words of a heading: inline math and roles dropped, markup removed."""
    title = re.sub(r"\{[a-z:]+\}`[^`]*`", "|", title)        # {cite}`x`, {math}`x`
    title = re.sub(r"\$[^$]*\$", "|", title)                  # inline math
    title = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", title)    # [text](link)
    title = re.sub(r"[`*_]", "", title)
    return [normalise(f) for f in title.split("|") if len(normalise(f)) > 2]


def run(cmd: list[str]) -> str:
    return subprocess.run(cmd, capture_output=True, text=True, check=True, timeout=120).stdout


def proportional_text(pdf: Path) -> list[tuple[int, str]]:
    """(page, line of text) for every text line set in a font that is not monospace."""
    xml = run(["pdftohtml", "-xml", "-i", "-q", "-stdout", "-enc", "UTF-8", str(pdf)])
    root = ET.fromstring(xml)
    out = []
    mono = set()
    for page in root.iter("page"):
        for spec in page.iter("fontspec"):
            if "mono" in spec.get("family", "").lower():
                mono.add(spec.get("id"))
        for text in page.iter("text"):
            if text.get("font") not in mono:
                out.append((int(page.get("number")), "".join(text.itertext())))
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("pdf", nargs="?", default="_build/pdf/book.pdf")
    ap.add_argument("--min-pages", type=int, default=None)
    ap.add_argument("--toc", default=str(ROOT / "_toc.yml"))
    args = ap.parse_args(argv)

    pdf = Path(args.pdf)
    missing_tools = [t for t in ("pdfinfo", "pdftotext", "pdftohtml") if shutil.which(t) is None]
    if missing_tools:
        print(f"pdf check: {', '.join(missing_tools)} not found; install Debian's poppler-utils (make pdf-tools)",
              file=sys.stderr)
        return 2
    if not pdf.is_file():
        print(f"pdf check: {pdf} does not exist; build it with make pdf", file=sys.stderr)
        return 2

    files = toc_files(Path(args.toc))
    notebooks = [f for f in files if (ROOT / (f + ".ipynb")).is_file()]
    min_pages = args.min_pages if args.min_pages is not None else max(40, 8 * len(notebooks))
    problems = []

    info = run(["pdfinfo", str(pdf)])
    pages = int(re.search(r"^Pages:\s+(\d+)", info, re.M).group(1))
    if pages < min_pages:
        problems.append(f"{pages} pages, fewer than the floor of {min_pages}")

    text = normalise(run(["pdftotext", "-enc", "UTF-8", str(pdf), "-"]))
    n_titles = 0
    for base in files:
        path = resolve(base)
        title = first_heading(path) if path else None
        if title is None:
            problems.append(f"{base}: no file with a '# ' heading found for this _toc.yml entry")
            continue
        n_titles += 1
        absent = [f for f in title_fragments(title) if f not in text]
        if absent:
            problems.append(f"title of {base} not in the PDF's text: {title!r} (missing {absent})")

    tex = [(p, line) for p, line in proportional_text(pdf) if RAW_TEX.search(line)]
    for p, line in tex[:10]:
        problems.append(f"raw TeX on page {p}: {normalise(line)[:100]!r}")
    if len(tex) > 10:
        problems.append(f"... and {len(tex) - 10} more lines with raw TeX")

    if problems:
        print(f"pdf check FAILED ({pdf}):", file=sys.stderr)
        for p in problems:
            print(f"  - {p}", file=sys.stderr)
        return 1
    print(f"pdf check passed: {pdf}, {pages} pages (floor {min_pages}), {n_titles} titles of _toc.yml found "
          f"in its text, no raw TeX outside code")
    return 0


if __name__ == "__main__":
    sys.exit(main())
