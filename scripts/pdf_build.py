"""Print the single-page HTML edition of the book to one PDF with headless Chromium, offline.

Usage: python scripts/pdf_build.py [_build/singlehtml] [-o _build/pdf/book.pdf]

It builds nothing: ``jupyter-book build . --builder singlehtml`` writes the whole book as one page
(``make pdf`` runs both). The page is served on 127.0.0.1 and opened in Debian's ``chromium`` (driven
by playwright, every other host unreachable), and printed only once MathJax has typeset every
formula, the widgets have rendered from their saved state and every image has loaded: the same
in-page inspection as the browser check, whose problems (raw TeX, MathJax errors, broken images,
console errors, off-machine requests, equations wider than the printed column) fail this step too;
the page is laid out in print media at the printed column's width, so what is measured is what is
printed. A4 at 80 %, with the book's title in the header,
page numbers in the footer and a PDF outline from the headings. Stops by itself after
``TOTAL_TIMEOUT_S``.
"""

from __future__ import annotations

import argparse
import shutil
import signal
import sys
import tempfile
import time
from pathlib import Path

from browser_check import INSPECT_JS, raw_tex, serve, settle
from offline_chromium import chromium_path, offline_context, stop_after

TOTAL_TIMEOUT_S = 240
PRINT_SCALE = 0.8  # the HTML's 16 px text prints at about 9.6 pt; a 75-character code line fits the A4 column
# A4 (210 mm) less 2 x 14 mm margins, in CSS pixels at 96 per inch, divided by the scale: the layout
# width of the printed page. The page is laid out (and measured) at this width in print media.
PRINT_WIDTH_PX = round((210 - 2 * 14) / 25.4 * 96 / PRINT_SCALE)
PAGE_TIMEOUT_MS = 120_000

# Print layout: the theme's print styles already drop the navigation; these make the edition read
# like a book: no launch buttons or "Show code" toggles, every hidden solution shown, each chapter
# on a new page, code wrapped rather than cut at the page edge.
PRINT_CSS = """
@media print {
  .header-article, .bd-header-article, .prev-next-area, .bd-footer-article, .bd-footer-content,
  .toggle-button, button.toggle-button, .headerlink, .copybtn, .bd-sidebar-secondary,
  .bd-sidebar-primary, .bd-header, .bd-footer, .search-button-field { display: none !important; }
  .bd-main .bd-content .bd-article-container { max-width: 100% !important; }
  .bd-page-width { max-width: 100% !important; }
  body > .bd-container, .bd-main, .bd-content { padding: 0 !important; margin: 0 !important; }
  span[id^="document-"] + section { break-before: page; }  /* each document of the book on a new page */
  div.highlight pre, div.cell_output pre { white-space: pre-wrap !important; word-break: break-all;
    overflow: visible !important; }
  figure, img, mjx-container[display="true"] { break-inside: avoid; }
  h1, h2, h3 { break-after: avoid; }
  .toggle-hidden { display: block !important; visibility: visible !important; opacity: 1 !important; }
}
"""

# Show every toggled block (solutions, hidden inputs) and stop MathJax from re-rendering on resize.
EXPAND_JS = r"""
() => {
  document.querySelectorAll('details').forEach((d) => { d.open = true; });
  document.querySelectorAll('.toggle-hidden').forEach((e) => e.classList.remove('toggle-hidden'));
  return document.querySelectorAll('details').length;
}
"""

HEADER = '<div style="font-size:8px; width:100%; text-align:center; color:#666;"><span class="title"></span></div>'
FOOTER = ('<div style="font-size:8px; width:100%; text-align:center; color:#666;">'
          '<span class="pageNumber"></span> / <span class="totalPages"></span></div>')


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("html", nargs="?", default="_build/singlehtml", help="the single-page HTML build")
    ap.add_argument("-o", "--output", default="_build/pdf/book.pdf")
    ap.add_argument("--page", default=None, help="the page holding the whole book (default: the toc root)")
    args = ap.parse_args(argv)

    root = Path(args.html).resolve()
    page_name = args.page or next((p.name for p in sorted(root.glob("*.html")) if p.name != "index.html"
                                   and p.stat().st_size > 1000), "index.html")
    if not (root / page_name).is_file():
        print(f"pdf: {root / page_name} does not exist; build the single-page HTML first", file=sys.stderr)
        return 2
    chromium = chromium_path("pdf")
    if chromium is None:
        return 2
    out = Path(args.output).resolve()
    out.parent.mkdir(parents=True, exist_ok=True)
    out.unlink(missing_ok=True)

    stop_after(TOTAL_TIMEOUT_S, "printing the PDF")
    from playwright.sync_api import sync_playwright

    t0 = time.monotonic()
    server, base = serve(root)
    problems: list[str] = []
    pending: dict = {}  # requests in flight, reported if the page never settles
    profile = tempfile.mkdtemp(prefix="pdf-print-")
    try:
        with sync_playwright() as pw:
            ctx = offline_context(pw, profile, chromium, base, problems.append,
                                  viewport={"width": PRINT_WIDTH_PX, "height": 1400}, color_scheme="light",
                                  reduced_motion="reduce")
            page = ctx.pages[0] if ctx.pages else ctx.new_page()
            page.on("console", lambda m: problems.append(f"console error: {m.text[:300]}") if m.type == "error" else None)
            page.on("pageerror", lambda e: problems.append(f"uncaught error: {str(e)[:300]}"))
            page.on("response", lambda r: problems.append(f"HTTP {r.status}: {r.url[:160]}") if r.status >= 400 else None)
            page.on("request", lambda r: pending.__setitem__(r, time.monotonic()))
            page.on("requestfinished", lambda r: pending.pop(r, None))
            page.on("requestfailed", lambda r: pending.pop(r, None))
            page.emulate_media(media="print")  # lay out, typeset and measure as printed
            page.goto(base + page_name, wait_until="load", timeout=PAGE_TIMEOUT_MS)
            page.add_style_tag(content=PRINT_CSS)
            page.evaluate(EXPAND_JS)
            # Figures and captions are the browser check's business; here: everything typeset and loaded.
            info = page.evaluate(INSPECT_JS, {"timeoutMs": PAGE_TIMEOUT_MS, "checkFigures": False})
            problems += info["problems"]
            problems += [f'raw TeX in text: "{s}"' for s in raw_tex(info["texts"])]
            problems += [f"request never finished: {url[:160]}" for url in settle(page, pending, PAGE_TIMEOUT_MS)]
            t_ready = time.monotonic()
            page.pdf(path=str(out), format="A4", scale=PRINT_SCALE, print_background=True, outline=True, tagged=True,
                     display_header_footer=True, header_template=HEADER, footer_template=FOOTER,
                     margin={"top": "16mm", "bottom": "16mm", "left": "14mm", "right": "14mm"})
            ctx.close()
    except Exception as exc:  # noqa: BLE001 - reported as the failure of this step
        problems.append(f"{exc.__class__.__name__}: {str(exc).splitlines()[0] if str(exc) else ''}")
    finally:
        signal.alarm(0)
        server.shutdown()
        server.server_close()
        shutil.rmtree(profile, ignore_errors=True)

    if problems:
        print(f"pdf FAILED ({page_name}):", file=sys.stderr)
        for p in dict.fromkeys(problems):
            print(f"  - {p}", file=sys.stderr)
        if out.exists():
            print(f"(the PDF was written anyway, with these problems: {out})", file=sys.stderr)
        return 1
    print(f"pdf: {out} ({out.stat().st_size / 1e6:.1f} MB) from {page_name}: {info['equations']} equations "
          f"typeset, {info['images']} images, {info['widgets']} widget elements; page ready in "
          f"{t_ready - t0:.1f} s, printed in {time.monotonic() - t_ready:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
