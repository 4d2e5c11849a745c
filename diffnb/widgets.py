"""Interactive explorers, each with a static counterpart for the HTML book.

- ``frame_slider(frames)``: a self-contained HTML slider over pre-rendered figures (base64 PNGs and a
  few lines of inline JavaScript). It works in the built HTML with no kernel, and its output is
  byte-stable, so strict nbval checks it like any other output.
- ``live(render, **controls)``: the same explorer with ipywidgets, recomputing on every change, for
  JupyterLab. It displays the widget and returns ``None``. Its output is the live widget's (a model id
  that changes on every run) and cannot be compared by nbval: cells that call it carry the
  ``nbval-ignore-output`` tag, with a comment saying why.
"""

from __future__ import annotations

import base64
import html
import re

from .plots import Figure

__all__ = ["SliderHTML", "frame_slider", "live"]


class SliderHTML:
    """Displays as HTML; its text form lists the frames and their PNG hashes."""

    def __init__(self, html_text: str, labels, figures):
        if not isinstance(html_text, str):
            raise TypeError(f"html_text must be a str, got {type(html_text).__name__}")
        for name, v in (("labels", labels), ("figures", figures)):
            if isinstance(v, (str, bytes)) or not hasattr(v, "__iter__"):
                raise TypeError(f"{name} must be an iterable (one item per frame), got {type(v).__name__}")
        labels, figures = list(labels), list(figures)
        if not labels:
            raise ValueError("labels must name at least one frame, got none")
        if len(figures) != len(labels):
            raise ValueError(f"figures must hold one plots.Figure per label ({len(labels)}), got {len(figures)}")
        for i, lab in enumerate(labels):
            if not isinstance(lab, str):
                raise TypeError(f"labels[{i}] must be a str, got {type(lab).__name__}")
        for i, fig in enumerate(figures):
            if not isinstance(fig, Figure):
                raise TypeError(f"figures[{i}] must be a plots.Figure (from plots.show), got {type(fig).__name__}")
        self.html_text, self.labels, self.figures = html_text, labels, figures

    def _repr_html_(self):
        return self.html_text

    def __repr__(self):
        rows = ", ".join(f"{lab}: {fig.sha}" for lab, fig in zip(self.labels, self.figures))
        return f"<frame slider with {len(self.labels)} frames: {rows}>"


def frame_slider(frames: dict, label: str = "frame", name: str = "slider", start: int = 0) -> SliderHTML:
    """A static slider over ``frames`` (an ordered mapping from a frame label to a ``plots.Figure``).

    ``name`` becomes part of the element ids and must be unique on a page (letters, digits, ``-``, ``_``).
    """
    if not isinstance(frames, dict) or not frames:
        raise TypeError("frames must be a non-empty dict mapping labels to plots.Figure objects")
    for key, fig in frames.items():
        if not isinstance(fig, Figure):
            raise TypeError(f"frames[{key!r}] must be a plots.Figure (from plots.show), got {type(fig).__name__}")
    for arg, v in (("label", label), ("name", name)):
        if not isinstance(v, str):
            raise TypeError(f"{arg} must be a str, got {type(v).__name__}")
    if isinstance(start, bool) or not isinstance(start, int):
        raise TypeError(f"start must be an int, got {type(start).__name__}")
    if not re.fullmatch(r"[A-Za-z][\w-]*", name):
        raise ValueError(f"name must start with a letter and use only letters, digits, '-' and '_', got {name!r}")
    labels = [str(k) for k in frames]
    if not 0 <= start < len(labels):
        raise ValueError(f"start must index a frame (0 to {len(labels) - 1}), got {start}")
    srcs = ["data:image/png;base64," + base64.b64encode(f.png).decode() for f in frames.values()]
    js_srcs = "[" + ",".join(f'"{s}"' for s in srcs) + "]"
    js_labels = "[" + ",".join('"' + html.escape(l).replace('"', "&quot;") + '"' for l in labels) + "]"
    text = (
        f'<div class="diffnb-slider" id="{name}">'
        f'<label for="{name}-range">{html.escape(label)}: <output id="{name}-out">{html.escape(labels[start])}</output></label><br>'
        f'<input type="range" id="{name}-range" min="0" max="{len(labels) - 1}" step="1" value="{start}" style="width: 60%">'
        f'<br><img id="{name}-img" src="{srcs[start]}" alt="{html.escape(label)} = {html.escape(labels[start])}" style="max-width: 100%">'
        f"<script>(function() {{ var s = {js_srcs}, l = {js_labels};"
        f' var r = document.getElementById("{name}-range"), i = document.getElementById("{name}-img"),'
        f' o = document.getElementById("{name}-out");'
        f' r.addEventListener("input", function() {{ i.src = s[r.value]; o.textContent = l[r.value];'
        f' i.alt = "{html.escape(label)} = " + l[r.value]; }}); }})();</script></div>'
    )
    return SliderHTML(text, labels, frames.values())


def live(render, **controls) -> None:
    """An ``ipywidgets.interactive`` explorer over ``render(**values) -> plots.Figure``.

    ``controls`` are widget specs as ``interact`` takes them (a list of options, a ``(min, max, step)``
    tuple or a widget). The explorer is displayed at once and the function returns ``None``, so a
    cell that ends with ``live(...)`` shows the widget and nothing else (no ``<function ...>`` repr).
    """
    import ipywidgets
    from IPython.display import display

    if not callable(render):
        raise TypeError(f"render must be callable, got {type(render).__name__}")
    if not controls:
        raise ValueError("controls must name at least one widget, e.g. live(render, eta=(0.0, 1.0, 0.1))")

    def draw(**values):
        display(render(**values))

    display(ipywidgets.interactive(draw, **controls))
