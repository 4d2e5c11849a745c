"""Run a chapter in JupyterLab in headless Chromium, move a live explorer's slider, check its output changes.

Usage: python scripts/lab_check.py [chapters/02_ddim.ipynb] [--fallback]

- Copies chapters/ to a temporary folder and serves that copy, so autosave and checkpoints never touch
  the committed notebooks; every Jupyter and IPython setting, runtime and workspace file lives there too.
- Starts JupyterLab on 127.0.0.1 at a free port with a random token, for a bounded time, with the
  settings that keep it off the network: no news or update checks, a read-only extension manager,
  the jupyter-lsp server extension disabled, autosave off.
- Opens the notebook in headless Chromium (Debian's ``chromium`` driven by playwright; every host but
  127.0.0.1 resolves to nothing and any other request is aborted and reported), runs all cells and
  fails if a cell raises. Then it focuses the first slider handle of a ``diffnb.widgets.live``
  explorer, presses an arrow key and waits for the explorer's output to change. A screenshot of the
  result is saved as _build/lab-check.png.
- If the notebook has no live explorer (or with ``--fallback``), it runs a small generated notebook
  instead, with ``widgets.live(render, n=(1, 5, 1))``, and says so. ``make lab-check`` passes
  ``--fallback`` (the same JupyterLab, widget manager and ``diffnb.widgets.live`` path in about
  15 s instead of about 55 s for Chapter 2, which strict nbval executes anyway);
  ``make lab-check LAB_NOTEBOOK=chapters/02_ddim.ipynb`` runs a chapter.

The exit code is 0 only if every step passed.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import nbformat
from offline_chromium import chromium_path, offline_context, stop_after

ROOT = Path(__file__).resolve().parent.parent
TOTAL_TIMEOUT_S = 180  # the whole check, server and kernel included, stops by itself after this
FALLBACK_NAME = "_lab_check_live.ipynb"
FALLBACK_CELLS = [
    "from diffnb import widgets, plots",
    "def render(n):\n"
    "    fig, ax = plots.figure(width=4, height=3)\n"
    "    x = [i / 50 for i in range(51)]\n"
    "    ax.plot(x, [v**n for v in x])\n"
    "    ax.set_xlabel(\"x\")\n"
    "    ax.set_ylabel(f\"x^{n}\")\n"
    "    return plots.show(fig)",
    "widgets.live(render, n=(1, 5, 1))",
]

# Lab settings for this run only (user_settings_dir is in the temporary folder).
LAB_SETTINGS = {
    "@jupyterlab/apputils-extension/notification.jupyterlab-settings": {"fetchNews": "false", "checkForUpdates": False},
    "@jupyterlab/docmanager-extension/plugin.jupyterlab-settings": {"autosave": False},
}


def has_live_explorer(path: Path) -> bool:
    nb = nbformat.read(path, as_version=4)
    return any(c.cell_type == "code" and "widgets.live(" in c.source for c in nb.cells)


def write_fallback(folder: Path) -> Path:
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(src) for src in FALLBACK_CELLS]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    path = folder / FALLBACK_NAME
    nbformat.write(nb, path)
    return path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def configure(tmp: Path, root_dir: Path, port: int, token: str) -> dict:
    """Write the server config and lab settings into ``tmp``; return the environment for the server."""
    settings = tmp / "lab-settings"
    for rel, values in LAB_SETTINGS.items():
        (settings / rel).parent.mkdir(parents=True, exist_ok=True)
        (settings / rel).write_text(json.dumps(values))
    config = {
        "ServerApp": {
            "ip": "127.0.0.1", "port": port, "port_retries": 0, "open_browser": False,
            "root_dir": str(root_dir), "jpserver_extensions": {"jupyter_lsp": False},
            "terminals_enabled": False, "allow_root": True,
        },
        "IdentityProvider": {"token": token},
        "LabApp": {
            "news_url": None, "check_for_updates_class": "jupyterlab.handlers.announcements.NeverCheckForUpdate",
            "extension_manager": "readonly", "expose_app_in_browser": True,
            "user_settings_dir": str(settings), "workspaces_dir": str(tmp / "workspaces"),
        },
    }
    (tmp / "config" / "labconfig").mkdir(parents=True)
    (tmp / "config" / "jupyter_server_config.json").write_text(json.dumps(config, indent=1))
    # The LSP front end polls /lsp/status, which 404s with jupyter-lsp disabled: turn it off too.
    lsp = ["@jupyterlab/lsp-extension", "@jupyterlab/fileeditor-extension:language-server",
           "@jupyterlab/notebook-extension:language-server"]
    (tmp / "config" / "labconfig" / "page_config.json").write_text(
        json.dumps({"disabledExtensions": {name: True for name in lsp}}))
    env = dict(os.environ)
    env.update(
        JUPYTER_CONFIG_DIR=str(tmp / "config"), JUPYTER_DATA_DIR=str(tmp / "data"),
        JUPYTER_RUNTIME_DIR=str(tmp / "runtime"), IPYTHONDIR=str(tmp / "ipython"),
        JUPYTER_PLATFORM_DIRS="1",
    )
    return env


def wait_for_server(url: str, proc: subprocess.Popen, timeout_s: float):
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout_s:
        if proc.poll() is not None:
            raise RuntimeError(f"JupyterLab exited with code {proc.returncode} before it was ready")
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            time.sleep(0.2)
    raise TimeoutError(f"JupyterLab did not answer {url.split('?')[0]} within {timeout_s} s")


# In the page: wait for the app and the notebook's kernel, run all cells, report cells and errors.
RUN_ALL_JS = r"""
async (path) => {
  const until = async (cond, ms, what) => { const t0 = performance.now();
    while (!cond()) { if (performance.now() - t0 > ms) throw new Error('timed out waiting for ' + what);
                      await new Promise((r) => setTimeout(r, 100)); } };
  await until(() => window.jupyterapp, 60000, 'window.jupyterapp');
  const app = window.jupyterapp;
  await app.restored;
  const panel = () => app.shell.widgets('main') && Array.from(app.shell.widgets('main')).find((w) => w.context && w.context.path === path);
  await until(panel, 60000, 'the notebook ' + path + ' to open');
  const nb = panel();
  await nb.context.ready;
  await nb.sessionContext.ready;
  await until(() => nb.sessionContext.session && nb.sessionContext.session.kernel, 60000, 'a kernel');
  await nb.sessionContext.session.kernel.info;
  app.shell.activateById(nb.id);
  const ok = await app.commands.execute('notebook:run-all-cells');
  await until(() => nb.sessionContext.session.kernel.status === 'idle', 120000, 'the kernel to become idle');
  const cells = Array.from(nb.content.model.cells).map((c) => c.toJSON()).filter((c) => c.cell_type === 'code');
  const errors = [];
  cells.forEach((c, i) => (c.outputs || []).forEach((o) => {
    if (o.output_type === 'error') errors.push(`code cell ${i + 1}: ${o.ename}: ${o.evalue}`); }));
  const unrun = cells.filter((c) => c.source.trim() && !c.execution_count).length;
  return {ok, cells: cells.length, unrun, errors, kernel: nb.sessionContext.kernelDisplayName};
}
"""

# The first slider of a live explorer (ipywidgets interact: a .widget-interact box) and its output.
EXPLORER = ".widget-interact"
SLIDER_JS = r"""
() => {
  const box = Array.from(document.querySelectorAll('.widget-interact')).find((b) => b.querySelector('.noUi-handle') && b.querySelector('.widget-output'));
  if (!box) return null;
  const h = box.querySelector('.noUi-handle');
  const out = box.querySelector('.widget-output');
  const img = out.querySelector('img');
  return {value: h.getAttribute('aria-valuenow'), min: h.getAttribute('aria-valuemin'), max: h.getAttribute('aria-valuemax'),
          readout: (box.querySelector('.widget-readout') || {}).textContent, output: img ? img.src : out.innerText,
          hasImage: !!img, index: Array.from(document.querySelectorAll('.widget-interact')).indexOf(box)};
}
"""


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("notebook", nargs="?", default="chapters/02_ddim.ipynb",
                    help="a chapter with a diffnb.widgets.live explorer (inside chapters/)")
    ap.add_argument("--fallback", action="store_true", help="use the small generated notebook instead")
    args = ap.parse_args(argv)

    chromium = chromium_path("lab check")
    if chromium is None:
        return 2
    chapters = ROOT / "chapters"
    requested = (Path.cwd() / args.notebook).resolve()

    stop_after(TOTAL_TIMEOUT_S, "the lab check")
    t_start = time.monotonic()
    tmp = Path(tempfile.mkdtemp(prefix="lab-check-"))
    proc, log, problems, notes, summary = None, None, [], [], []
    try:
        work = tmp / "chapters"
        shutil.copytree(chapters, work, ignore=shutil.ignore_patterns(".ipynb_checkpoints", "__pycache__"))
        if args.fallback:
            nb_path = write_fallback(work)
            notes.append("using the generated notebook (--fallback)")
        elif requested.is_file() and requested.parent == chapters and has_live_explorer(requested):
            nb_path = work / requested.name
        else:
            why = "does not exist" if not requested.is_file() else (
                "is not in chapters/" if requested.parent != chapters else "has no widgets.live explorer")
            nb_path = write_fallback(work)
            notes.append(f"{args.notebook} {why}: using the generated notebook {FALLBACK_NAME} instead")
        port, token = free_port(), secrets.token_hex(24)
        env = configure(tmp, work, port, token)
        base = f"http://127.0.0.1:{port}/"
        log = open(tmp / "lab.log", "w")
        proc = subprocess.Popen([str(Path(sys.executable).parent / "jupyter"), "lab"], cwd=tmp, env=env,
                                stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        wait_for_server(f"{base}api/status?token={token}", proc, 60)
        t_ready = time.monotonic()

        from playwright.sync_api import sync_playwright

        with sync_playwright() as pw:
            ctx = offline_context(pw, str(tmp / "chromium"), chromium, base, problems.append,
                                  viewport={"width": 1280, "height": 900})
            ws_base = base.replace("http", "ws", 1)
            page = ctx.pages[0] if ctx.pages else ctx.new_page()
            page.on("websocket", lambda ws: None if ws.url.startswith(ws_base)
                    else problems.append(f"off-machine websocket: {ws.url[:160]}"))
            page.on("pageerror", lambda e: problems.append(f"uncaught error in JupyterLab: {str(e)[:300]}"))
            page.on("console", lambda m: problems.append(f"console error in JupyterLab: {m.text[:300]}") if m.type == "error" else None)
            page.goto(f"{base}lab/tree/{nb_path.name}?reset&token={token}", wait_until="load", timeout=60_000)
            run = page.evaluate(RUN_ALL_JS, nb_path.name)
            summary.append(f"{nb_path.name}: {run['cells']} code cells run in {time.monotonic() - t_ready:.1f} s "
                           f"(kernel {run['kernel']}), {len(run['errors'])} errors")
            if run["errors"]:
                problems.extend(f"cell raised: {e[:300]}" for e in run["errors"])
            if run["unrun"]:
                problems.append(f"{run['unrun']} code cells were not executed by run-all")
            before = None
            try:
                if not run["errors"]:
                    page.wait_for_function(f"({SLIDER_JS})() !== null && ({SLIDER_JS})().output", timeout=20_000)
                    before = page.evaluate(SLIDER_JS)
            except Exception:  # noqa: BLE001 - reported below
                problems.append("no live explorer with a slider and an output appeared after running the cells")
            if before is not None:
                handle = page.locator(EXPLORER).nth(before["index"]).locator(".noUi-handle").first
                handle.scroll_into_view_if_needed()
                handle.focus()
                key = "ArrowRight" if float(before["value"]) < float(before["max"]) else "ArrowLeft"
                page.keyboard.press(key)
                try:
                    page.wait_for_function(
                        f"(b) => {{ const s = ({SLIDER_JS})(); return s && s.value !== b.value && s.output && s.output !== b.output; }}",
                        arg=before, timeout=20_000)
                    after = page.evaluate(SLIDER_JS)
                    summary.append(f"slider {before['value']} -> {after['value']} (readout {before['readout']} -> "
                                   f"{after['readout']}), explorer output changed ({'figure' if after['hasImage'] else 'text'})")
                except Exception:  # noqa: BLE001 - reported as the failure of this check
                    after = page.evaluate(SLIDER_JS)
                    problems.append(f"after {key} the explorer did not update: slider {before['value']} -> "
                                    f"{after and after['value']}, output changed: {bool(after and after['output'] != before['output'])}")
            (ROOT / "_build").mkdir(exist_ok=True)
            page.screenshot(path=str(ROOT / "_build" / "lab-check.png"))  # for a person to look at
            ctx.close()
    except Exception as exc:  # noqa: BLE001 - any failure is reported with the server log
        problems.append(f"{exc.__class__.__name__}: {str(exc).splitlines()[0] if str(exc) else ''}")
    finally:
        signal.alarm(0)
        if proc is not None and proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)  # the server and the kernels it started
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        if log is not None:
            log.close()
        server_log = (tmp / "lab.log").read_text(errors="replace") if (tmp / "lab.log").exists() else ""
        shutil.rmtree(tmp, ignore_errors=True)

    for line in notes + summary:
        print(f"lab check: {line}")
    print(f"lab check: total {time.monotonic() - t_start:.1f} s")
    if problems:
        print("\nlab check FAILED:", file=sys.stderr)
        for p in dict.fromkeys(problems):
            print(f"  - {p}", file=sys.stderr)
        tail = "\n".join(server_log.strip().splitlines()[-15:])
        print(f"\nlast lines of the JupyterLab log:\n{tail}", file=sys.stderr)
        return 1
    print("lab check passed: JupyterLab ran the notebook offline and the explorer followed its slider")
    return 0


if __name__ == "__main__":
    sys.exit(main())
