"""A local Sphinx extension for the book's single-page edition (the source of the PDF).

Jupyter Book's ``singlehtml`` builder writes the whole book as its root page, but two things are
made per page and therefore lost there:

- myst-nb adds the saved widget state of a notebook, and the scripts that render it (RequireJS,
  the widget manager), only to that notebook's own page: on the single page every widget would be
  blank. Here the root page of a ``singlehtml`` build gets the scripts and states of every document.
- The theme loads ``searchindex.js`` on every page, and ``singlehtml`` writes none (a 404): it
  gets an empty one (the printed edition has no search box).

Nothing changes for the ordinary ``html`` build.
"""

from __future__ import annotations

from pathlib import Path


def _all_widget_scripts(app, pagename, templatename, context, doctree):
    if app.builder.name != "singlehtml" or pagename != app.config.root_doc:
        return
    from myst_nb.sphinx_ import NbMetadataCollector

    data = NbMetadataCollector.get_doc_data(app.env)
    seen = {(uri, str(sorted(kw.items()))) for uri, kw in data[pagename].get("js_files", {}).values()}
    for docname in sorted(app.env.found_docs):
        if docname == pagename:
            continue
        for uri, kwargs in data[docname].get("js_files", {}).values():
            key = (uri, str(sorted(kwargs.items())))
            if key not in seen:
                seen.add(key)
                app.add_js_file(uri, **kwargs)


def _empty_searchindex(app, exception):
    if exception is None and app.builder.name == "singlehtml":
        index = Path(app.outdir) / "searchindex.js"
        if not index.exists():
            index.write_text("/* The single-page edition has no search index. */\n", encoding="utf-8")


def setup(app):
    app.connect("html-page-context", _all_widget_scripts, priority=600)  # after myst-nb's own (500)
    app.connect("build-finished", _empty_searchindex)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
