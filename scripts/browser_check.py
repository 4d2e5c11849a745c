"""Open every page of the built book in headless Chromium, offline, and fail on anything a reader would see broken.

Usage: python scripts/browser_check.py [_build/html] [--screenshots _build/screenshots] [--search posterior]

It builds nothing. It serves the HTML folder on 127.0.0.1 (a free port, for a bounded time), opens each
page (every .html outside the ``_*`` folders, search.html included) in Debian's ``chromium`` driven by
playwright, and reports, page by page:

- console errors and uncaught page errors;
- failed requests (network errors and HTTP status >= 400, seen by the browser or by the server);
- requests to any host other than the local server (aborted before they leave the machine; DNS for
  every other host is also mapped to NOTFOUND);
- math left as raw TeX ($$, \\(, \\[, \\begin{...}, $...$ with TeX, or a bare \\frac, \\beta, ... in text
  outside code), math
  elements MathJax did not typeset, MathJax errors (mjx-merror) and undefined macros (shown in red);
- display equations wider than the text column (at the 1280 px viewport they are cut off and slide
  under their equation number);
- images that did not load (naturalWidth 0);
- output figures (an ``<img>`` inside a notebook cell's output, widgets and HTML sliders included)
  that are not inside a numbered ``<figure>`` with a ``<figcaption>`` (the cell's
  ``mystnb.figure`` metadata), or that the page never references by number;
- code boxes (every ``<pre>``: code cells, their text outputs, literal blocks) whose content is wider
  than the box, so that the reader must scroll sideways; measured with every toggled block opened;
- a missing favicon: each page must link one, and ``/favicon.ico`` must be served at the site root;
- widgets whose saved state did not render;
- internal links to a missing file or a missing #anchor.

On search.html it runs a query and requires results that link to existing pages. It waits for MathJax
(``MathJax.startup.promise``), saves a full-page PNG of every page and prints a summary. The exit code
is 0 only if no page has a problem.
"""

from __future__ import annotations

import argparse
import functools
import http.server
import re
import shutil
import signal
import sys
import tempfile
import threading
import time
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urljoin, urlsplit

from offline_chromium import chromium_path, offline_context, stop_after

PAGE_TIMEOUT_MS = 30_000
TOTAL_TIMEOUT_S = 300  # the whole check, server included, stops by itself after this

# Raw TeX in visible text: display/inline delimiters, environments, $...$ holding TeX syntax, or a
# common TeX command on its own (what is left when markdown breaks an inline formula apart, e.g. a
# line of the formula that starts with "+ " and becomes a list item). The PDF check uses it too.
TEX_COMMANDS = ("frac", "sqrt", "begin", "end", "left", "right", "mathrm", "mathbf", "mathbb", "mathcal",
                "operatorname", "text", "alpha", "beta", "gamma", "delta", "epsilon", "varepsilon", "eta",
                "theta", "lambda", "mu", "sigma", "tau", "phi", "nabla", "partial", "int", "sum", "prod",
                "cdot", "times", "leq", "geq", "approx", "mid", "bar", "hat", "tilde", "quad", "log", "exp")
RAW_TEX = re.compile(r"\$\$|\\\(|\\\)|\\\[|\\\]|\\(?:" + "|".join(TEX_COMMANDS) + r")(?![a-zA-Z])"
                     r"|\$[^$\s][^$\n]*[\\^_{}][^$\n]*\$")

# Runs in the page once it has loaded: waits for MathJax, widgets, fonts and images, then measures.
INSPECT_JS = r"""
async ({timeoutMs, checkFigures = true}) => {
  const problems = [];
  const until = (cond, ms) => new Promise((resolve) => {
    const t0 = performance.now();
    const poll = () => { if (cond()) resolve(true); else if (performance.now() - t0 > ms) resolve(false);
                         else setTimeout(poll, 50); };
    poll();
  });
  const mathEls = Array.from(document.querySelectorAll('.math'));
  if (mathEls.length) {
    const ok = await until(() => window.MathJax && window.MathJax.startup && window.MathJax.startup.promise, timeoutMs);
    if (!ok) problems.push(`MathJax did not start (${mathEls.length} math elements on the page)`);
    else await Promise.race([window.MathJax.startup.promise,
                             new Promise((r) => setTimeout(r, timeoutMs))]);
  }
  // Widgets: each view tag with a model in the saved state gets a rendered .widget-subarea before it.
  const states = Array.from(document.querySelectorAll('script[type="application/vnd.jupyter.widget-state+json"]'));
  const models = new Set();
  for (const s of states) { try { Object.keys(JSON.parse(s.textContent).state || {}).forEach((k) => models.add(k)); }
                            catch (e) { problems.push(`widget state is not valid JSON: ${e}`); } }
  const views = Array.from(document.querySelectorAll('script[type="application/vnd.jupyter.widget-view+json"]'));
  const rendered = (v) => { const p = v.previousElementSibling;
                            return p && p.classList.contains('widget-subarea') && p.querySelector('.jupyter-widgets'); };
  const viewIds = views.map((v) => { try { return JSON.parse(v.textContent).model_id; } catch (e) { return null; } });
  viewIds.forEach((id, i) => { if (!models.has(id)) problems.push(`widget view ${id} has no saved state: it shows blank`); });
  const expected = views.filter((v, i) => models.has(viewIds[i]));
  if (expected.length && !(await until(() => expected.every(rendered), timeoutMs)))
    problems.push(`${expected.filter((v) => !rendered(v)).length} of ${expected.length} widgets did not render from their saved state`);
  // Images: load lazy ones too, then wait until each is complete.
  const imgs = Array.from(document.images);
  imgs.forEach((img) => { if (img.loading === 'lazy') img.loading = 'eager'; });
  await until(() => imgs.every((img) => img.complete), timeoutMs);
  await document.fonts.ready;
  for (const img of imgs) if (img.naturalWidth === 0) problems.push(`image did not load: ${img.currentSrc || img.src || img.outerHTML.slice(0, 120)}`);
  // Output figures: each image a notebook output produced sits in a numbered, captioned <figure>
  // (myst-nb writes one for a cell with {"mystnb": {"figure": {"caption": ..., "name": ...}}}),
  // and the page refers to that figure by its number.
  const where = (el) => { const sec = el.closest('section[id]'); const h = sec && sec.querySelector('h1, h2, h3');
                          return `in "${h ? h.textContent.replace('#', '').trim().slice(0, 60) : '?'}"`; };
  let outputFigures = 0;
  const figs = new Set();
  for (const img of (checkFigures ? document.querySelectorAll('.cell_output img') : [])) {
    outputFigures += 1;
    const fig = img.closest('figure');
    const cap = fig && fig.querySelector('figcaption');
    if (!fig || !cap || !cap.querySelector('.caption-number'))
      problems.push(`output figure without a numbered caption ${where(img)} (${(img.getAttribute('src') || '').slice(0, 60)}): ` +
                    'give its code cell the metadata {"mystnb": {"figure": {"caption": "...", "name": "fig-..."}}}');
    else figs.add(fig);
  }
  const hrefs = Array.from(document.querySelectorAll('a[href*="#"]')).filter((a) => !a.classList.contains('headerlink'))
    .map((a) => decodeURIComponent(a.getAttribute('href').split('#').pop()));
  for (const fig of figs)
    if (!fig.id || !hrefs.includes(fig.id))
      problems.push(`${fig.querySelector('.caption-number').textContent.trim()} (${fig.id || 'no name'}) is never referenced ` +
                    `by number on its page: write {numref}\`${fig.id || 'fig-...'}\` in the text`);
  // Math: untypeset math elements, MathJax errors, raw TeX in text outside code.
  const untypeset = mathEls.filter((el) => !el.querySelector('mjx-container'));
  for (const el of untypeset.slice(0, 5)) problems.push(`math not typeset: ${el.textContent.trim().slice(0, 80)}`);
  if (untypeset.length > 5) problems.push(`... and ${untypeset.length - 5} more math elements not typeset`);
  // MathJax errors, and undefined macros (MathJax's noundefined package shows their names in red).
  const texOf = new Map();
  if (window.MathJax && MathJax.startup && MathJax.startup.document)
    for (const item of MathJax.startup.document.math) texOf.set(item.typesetRoot, item.math);
  const bad = new Set();
  for (const el of document.querySelectorAll('mjx-merror, mjx-container mjx-mtext[style*="color: red"]'))
    bad.add(el.closest('mjx-container'));
  for (const c of Array.from(bad).slice(0, 5)) {
    const err = c.querySelector('[data-mjx-error]');
    problems.push(`MathJax error${err ? ' "' + err.getAttribute('data-mjx-error') + '"' : ' (undefined macro)'} in: ${(texOf.get(c) || '?').replace(/\s+/g, ' ').trim().slice(0, 100)}`);
  }
  if (bad.size > 5) problems.push(`... and ${bad.size - 5} more MathJax errors`);
  // Display math wider than the text column: the reader sees it cut off (it scrolls, under its number).
  for (const c of document.querySelectorAll('div.math mjx-container[display="true"]'))
    if (c.scrollWidth > c.clientWidth + 2) {
      const eqno = c.closest('div.math').querySelector('.eqno');
      problems.push(`equation ${eqno ? eqno.firstChild.textContent.trim() + ' ' : ''}is wider than the text column ` +
                    `(${c.scrollWidth} > ${c.clientWidth} px) and is cut off: ${(texOf.get(c) || '?').replace(/\s+/g, ' ').trim().slice(0, 80)}`);
    }
  const skip = 'script, style, noscript, template, textarea, pre, code, kbd, samp, .highlight, mjx-container, ' +
               'script[type^="application/vnd.jupyter"]';
  const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  const texts = [];
  for (let n = walker.nextNode(); n; n = walker.nextNode())
    if (n.nodeValue.trim() && !n.parentElement.closest(skip)) texts.push(n.nodeValue);
  // Links: every <a href>, resolved by the browser.
  const links = Array.from(document.querySelectorAll('a[href]')).map((a) => a.href);
  const ids = Array.from(document.querySelectorAll('[id]')).map((e) => e.id)
    .concat(Array.from(document.querySelectorAll('a[name]')).map((e) => e.name));
  return {problems, texts, links, ids, equations: document.querySelectorAll('mjx-container').length,
          images: imgs.length, outputFigures, widgets: document.querySelectorAll('.jupyter-widgets').length,
          favicon: !!document.querySelector('link[rel~="icon"]'),
          widgetViews: views.length};
}
"""


# Runs after the screenshot: opens every toggled block (hidden inputs, solutions), then measures the
# code boxes. A box whose content is wider than the box scrolls sideways: the reader misses the end.
CODE_WIDTH_JS = r"""
async () => {
  document.querySelectorAll('details').forEach((d) => { d.open = true; });
  document.querySelectorAll('.toggle-hidden').forEach((e) => e.classList.remove('toggle-hidden'));
  await new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r)));
  const wide = [];
  let boxes = 0;
  for (const pre of document.querySelectorAll('pre')) {
    if (!pre.clientWidth) continue;  // not displayed
    boxes += 1;
    if (pre.scrollWidth > pre.clientWidth) {
      const lines = pre.textContent.split('\n');
      const longest = lines.reduce((a, b) => (b.length > a.length ? b : a), '');
      const kind = pre.closest('.cell_output') ? 'output box' : (pre.closest('.cell_input') ? 'code cell' : 'code block');
      const sec = pre.closest('section[id]'); const h = sec && sec.querySelector('h1, h2, h3');
      wide.push(`${kind} wider than its box (${pre.scrollWidth} > ${pre.clientWidth} px) in ` +
                `"${h ? h.textContent.replace('#', '').trim().slice(0, 50) : '?'}": longest line ${longest.length} ` +
                `characters: ${longest.trim().slice(0, 70)}`);
    }
  }
  return {wide, boxes};
}
"""


class _Handler(http.server.SimpleHTTPRequestHandler):
    """Serves the book quietly and records every error status it sends."""

    errors: list = []

    def log_message(self, fmt, *args):
        pass

    def log_request(self, code="-", size="-"):
        if str(code).isdigit() and int(code) >= 400:
            self.errors.append(f"{int(code)} {self.path}")


class _Server(http.server.ThreadingHTTPServer):
    # The default listen backlog (5) can overflow when Chromium opens a page's images, fonts and
    # scripts at once while the machine is loaded; TCP then retries the dropped connections seconds
    # later. A deeper backlog avoids those stalls.
    request_queue_size = 128


def serve(root: Path):
    """Start a threaded HTTP server for ``root`` on 127.0.0.1 at a free port; returns (server, base URL)."""
    handler = functools.partial(_Handler, directory=str(root))
    server = _Server(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}/"


def settle(page, pending: dict, timeout_ms: int, quiet_ms: int = 500) -> list[str]:  # pending: Request -> start
    """Wait until none of the page's requests has been in flight for ``quiet_ms``; [] then, else the URLs
    still in flight at the timeout. (Playwright's "networkidle" state sometimes never arrives on a loaded
    machine although every request has finished: this waits on the requests themselves.)"""
    deadline = time.monotonic() + timeout_ms / 1000
    quiet_since = None
    while time.monotonic() < deadline:
        if pending:
            quiet_since = None
        elif quiet_since is None:
            quiet_since = time.monotonic()
        elif time.monotonic() - quiet_since >= quiet_ms / 1000:
            return []
        page.wait_for_timeout(50)
    return [r.url for r in pending]


def pages_of(root: Path) -> list[str]:
    """Site-relative paths of every HTML page, sorted; folders starting with '_' hold assets, not pages."""
    rels = (p.relative_to(root) for p in root.rglob("*.html"))
    return sorted(r.as_posix() for r in rels if not any(part.startswith("_") for part in r.parts[:-1]))


class _Ids(HTMLParser):
    """Collects the ids (and a-names) of an HTML file that the browser did not open."""

    def __init__(self):
        super().__init__()
        self.ids = set()

    def handle_starttag(self, tag, attrs):
        for k, v in attrs:
            if v and (k == "id" or (tag == "a" and k == "name")):
                self.ids.add(v)


def target_file(root: Path, path: str) -> Path:
    """The file the server sends for a URL path (a folder means its index.html)."""
    f = root / unquote(path).lstrip("/")
    return f / "index.html" if f.is_dir() else f


def check_links(root, base, links_by_page, ids_by_page):
    """Internal links: the target file exists and, for an #anchor into an HTML page, the id exists there."""
    problems, checked, external = {}, 0, 0
    ids_cache = {}
    for page, links in links_by_page.items():
        for href in links:
            parts = urlsplit(href)
            if parts.scheme not in ("http", "https"):
                continue
            if not href.startswith(base):
                external += 1
                continue
            checked += 1
            f = target_file(root, parts.path)
            if not f.is_file():
                problems.setdefault(page, []).append(f"link to a missing page: {href[len(base) - 1:]}")
                continue
            frag = unquote(parts.fragment)
            if not frag or f.suffix != ".html":
                continue
            rel = f.relative_to(root).as_posix()
            if rel not in ids_cache:
                if rel in ids_by_page:
                    ids_cache[rel] = ids_by_page[rel]
                else:
                    parser = _Ids()
                    parser.feed(f.read_text(encoding="utf-8", errors="replace"))
                    ids_cache[rel] = parser.ids
            if frag not in ids_cache[rel]:
                problems.setdefault(page, []).append(f"link to a missing anchor: {href[len(base) - 1:]}")
    return problems, checked, external


def raw_tex(texts):
    """Text snippets that still hold TeX delimiters."""
    return [t.strip()[:100] for t in texts if RAW_TEX.search(t)]


def redirect_target(f: Path) -> str | None:
    """The URL of a <meta http-equiv="refresh"> stub, or None for a real page."""
    m = re.search(r'<meta[^>]+http-equiv="refresh"[^>]+url=([^"\s]+)', f.read_text(encoding="utf-8", errors="replace"), re.I)
    return m.group(1) if m else None


def screenshot_name(rel: str) -> str:
    return rel[: -len(".html")].replace("/", "__") + ".png"


def run_search(page, base, query, timeout_ms):
    """Search the book from search.html and return (number of results, result links, problems)."""
    page.goto(f"{base}search.html?q={query}", wait_until="load", timeout=timeout_ms)
    try:
        page.wait_for_function(
            "() => { const s = document.querySelector('#search-results .search-summary, #search-results p');"
            " return s && /finished|found|did not match/i.test(s.textContent); }",
            timeout=timeout_ms,
        )
    except Exception as exc:  # noqa: BLE001 - reported as a problem of the page
        return 0, [], [f"search for {query!r} did not finish: {exc.__class__.__name__}"]
    links = page.eval_on_selector_all("#search-results ul.search li a", "els => els.map(a => a.href)")
    if not links:
        summary = page.inner_text("#search-results")
        return 0, [], [f"search for {query!r} found nothing: {summary.strip()[:200]}"]
    return len(links), links, []


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("html", nargs="?", default="_build/html", help="the built HTML folder")
    ap.add_argument("--screenshots", default="_build/screenshots", help="where to save one PNG per page")
    ap.add_argument("--search", default="posterior", help="a word the book contains, searched on search.html")
    ap.add_argument("--width", type=int, default=1280, help="viewport width in CSS pixels")
    args = ap.parse_args(argv)

    root = Path(args.html).resolve()
    if not (root / "index.html").is_file():
        print(f"browser check: {root} has no index.html; build the book first (make build-html)", file=sys.stderr)
        return 2
    chromium = chromium_path("browser check")
    if chromium is None:
        return 2
    shots = Path(args.screenshots)
    shutil.rmtree(shots, ignore_errors=True)
    shots.mkdir(parents=True)

    stop_after(TOTAL_TIMEOUT_S, "the browser check")
    from playwright.sync_api import sync_playwright

    t_start = time.monotonic()
    server, base = serve(root)
    pages = pages_of(root)
    problems: dict[str, list[str]] = {}
    links_by_page, ids_by_page, rows = {}, {}, []
    profile = tempfile.mkdtemp(prefix="browser-check-")
    try:
        with sync_playwright() as pw:
            current = {"page": "(startup)"}

            def note(msg):
                problems.setdefault(current["page"], []).append(msg)

            ctx = offline_context(pw, profile, chromium, base, note, viewport={"width": args.width, "height": 900},
                                  color_scheme="light", reduced_motion="reduce")
            page = ctx.pages[0] if ctx.pages else ctx.new_page()
            page.on("console", lambda m: note(f"console {m.type}: {m.text[:300]}") if m.type == "error" else None)
            page.on("pageerror", lambda e: note(f"uncaught error: {str(e)[:300]}"))
            page.on("websocket", lambda ws: None if ws.url.startswith(base.replace("http", "ws", 1))
                    else note(f"off-machine websocket: {ws.url[:160]}"))
            page.on("requestfailed", lambda r: None if not r.url.startswith(base)
                    else note(f"request failed ({r.failure}): {r.url[len(base) - 1:][:160]}"))
            page.on("response", lambda r: note(f"HTTP {r.status}: {r.url[len(base) - 1:][:160]}") if r.status >= 400 else None)
            page.on("crash", lambda p: note("the page crashed"))
            pending: dict = {}  # requests in flight, for the report when a page never settles
            page.on("request", lambda r: pending.__setitem__(r, time.monotonic()))
            page.on("requestfinished", lambda r: pending.pop(r, None))
            page.on("requestfailed", lambda r: pending.pop(r, None))

            for rel in pages:
                current["page"] = rel
                pending.clear()
                t0 = time.monotonic()
                n_server_errors = len(_Handler.errors)
                redirect = redirect_target(root / rel)
                if redirect is not None:
                    # A redirect stub (index.html): its target must exist; the target page is checked on its own.
                    links_by_page[rel] = [urljoin(base + rel, redirect)]
                    page.goto(base + rel, wait_until="load", timeout=PAGE_TIMEOUT_MS)
                    page.wait_for_url(urljoin(base + rel, redirect).split("#")[0] + "*", timeout=PAGE_TIMEOUT_MS)
                    for url in settle(page, pending, PAGE_TIMEOUT_MS):  # let the landing page finish
                        note(f"request never finished: {url[:160]}")
                    rows.append((f"{rel} -> {redirect}", 0, 0, 0, 1, time.monotonic() - t0, 0, 0, 0))
                    continue
                try:
                    page.goto(base + rel, wait_until="load", timeout=PAGE_TIMEOUT_MS)
                    info = page.evaluate(INSPECT_JS, {"timeoutMs": PAGE_TIMEOUT_MS})
                    for url in settle(page, pending, PAGE_TIMEOUT_MS):
                        note(f"request never finished: {url[:160]}")
                    page.screenshot(path=str(shots / screenshot_name(rel)), full_page=True, animations="disabled")
                    code = page.evaluate(CODE_WIDTH_JS)
                except Exception as exc:  # noqa: BLE001 - a page that cannot be inspected is a problem of that page
                    note(f"could not inspect the page: {str(exc).splitlines()[0]}")
                    continue
                for msg in info["problems"] + code["wide"]:
                    note(msg)
                if not info["favicon"]:
                    note('no <link rel="icon"> on the page (html.favicon in _config.yml)')
                for snippet in raw_tex(info["texts"]):
                    note(f'raw TeX in text: "{snippet}"')
                links_by_page[rel] = info["links"]
                ids_by_page[rel] = set(info["ids"])
                for err in _Handler.errors[n_server_errors:]:  # e.g. requests the page's events did not show
                    if not any(err.split(" ", 1)[1] in m for m in problems.get(rel, [])):
                        note(f"server sent {err}")
                rows.append((rel, info["equations"], info["images"], info["widgets"], len(info["links"]),
                             time.monotonic() - t0, info["widgetViews"], info["outputFigures"], code["boxes"]))

            # The search page, driven: a query must find pages, and its result links are checked too.
            current["page"] = "search.html (query)"
            n_results, result_links, search_problems = run_search(page, base, args.search, PAGE_TIMEOUT_MS)
            for msg in search_problems:
                note(msg)
            links_by_page["search.html (query)"] = result_links
            page.screenshot(path=str(shots / "search__query.png"), full_page=True, animations="disabled")
            # Browsers ask for /favicon.ico at the site root whatever the page links.
            current["page"] = "favicon.ico (site root)"
            icon = ctx.request.get(base + "favicon.ico", timeout=PAGE_TIMEOUT_MS)
            if not icon.ok or not icon.headers.get("content-type", "").startswith("image/"):
                note(f"/favicon.ico: HTTP {icon.status} {icon.headers.get('content-type', '')}")
            ctx.close()
    finally:
        signal.alarm(0)
        server.shutdown()
        server.server_close()
        shutil.rmtree(profile, ignore_errors=True)

    link_problems, n_checked, n_external = check_links(root, base, links_by_page, ids_by_page)
    for page_name, msgs in link_problems.items():
        problems.setdefault(page_name, []).extend(msgs)

    print(f"{'page':<34} {'equations':>9} {'images':>6} {'figures':>7} {'code boxes':>10} {'widgets':>7} "
          f"{'links':>5} {'seconds':>7}")
    for rel, eq, im, wd, ln, dt, _, fg, cb in rows:
        print(f"{rel:<34} {eq:>9} {im:>6} {fg:>7} {cb:>10} {wd:>7} {ln:>5} {dt:>7.1f}")
    total = lambda k: sum(r[k] for r in rows)  # noqa: E731
    print(f"pages: {len(rows)}, equations typeset: {total(1)}, images: {total(2)} ({total(7)} output figures, "
          f"each numbered and captioned), code boxes measured: {total(8)}, "
          f"widgets rendered from saved state: {total(6)} ({total(3)} .jupyter-widgets elements), "
          f"internal links checked: {n_checked} (external links not followed: {n_external}), "
          f"search {args.search!r}: {n_results} results, "
          f"screenshots: {shots}/, time: {time.monotonic() - t_start:.1f} s")
    if problems:
        n = sum(len(v) for v in problems.values())
        print(f"\nbrowser check FAILED: {n} problems on {len(problems)} pages", file=sys.stderr)
        for page_name in sorted(problems):
            print(f"  {page_name}:", file=sys.stderr)
            for msg in dict.fromkeys(problems[page_name]):  # keep order, drop repeats
                print(f"    - {msg}", file=sys.stderr)
        return 1
    print("browser check passed: no console errors, failed or off-machine requests, raw TeX, broken images or links, "
          "uncaptioned figures or overflowing code boxes; favicon served")
    return 0


if __name__ == "__main__":
    sys.exit(main())
