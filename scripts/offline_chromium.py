"""Headless Chromium for the book's checks, offline: Debian's ``chromium`` driven by playwright.

Shared by ``browser_check.py``, ``pdf_build.py`` and ``lab_check.py``: finding the browser, a time
limit for the whole check, and a browser context in which only the local server is reachable
(every other request is aborted before it leaves the machine, and reported).
"""

from __future__ import annotations

import shutil
import signal
import sys

# Flags for a quiet, offline Chromium: no background services, and every host but 127.0.0.1 resolves to nothing.
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
]


def chromium_path(tool: str) -> str | None:
    """Debian's ``chromium`` on PATH, or None after telling the user (prefixed by ``tool``) how to get it."""
    path = shutil.which("chromium")
    if path is None:
        print(f"{tool}: no 'chromium' on PATH; install Debian's chromium (make chromium)", file=sys.stderr)
    return path


def stop_after(seconds: int, what: str) -> None:
    """Raise TimeoutError in the main thread once ``seconds`` have passed (cancel with signal.alarm(0))."""
    def too_long(signum, frame):
        raise TimeoutError(f"{what} did not finish within {seconds} s")

    signal.signal(signal.SIGALRM, too_long)
    signal.alarm(seconds)


def offline_context(pw, profile: str, chromium: str, base: str, report, **options):
    """A persistent headless context in ``profile`` in which only URLs under ``base`` load; any other
    request is aborted and passed to ``report`` as a message. ``options`` go to playwright's
    ``launch_persistent_context`` (viewport, colour scheme, ...)."""
    ctx = pw.chromium.launch_persistent_context(
        profile, executable_path=chromium, headless=True, args=CHROMIUM_ARGS, service_workers="block",
        **options)

    def route(r):
        if r.request.url.startswith(base):
            r.continue_()
        else:
            report(f"off-machine request blocked: {r.request.url[:160]}")
            r.abort("blockedbyclient")

    ctx.route("**/*", route)
    return ctx
