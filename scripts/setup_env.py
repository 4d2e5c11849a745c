"""Create the virtual environment and install the pinned environment into it, fast.

Usage: python3 scripts/setup_env.py [--venv .venv] [--installer uv|pip] [--uv-version 0.13.8]

With ``--installer uv`` (the default) it installs ``uv`` into the venv with pip, then installs
``requirements.txt`` and ``diffnb`` (editable) with ``uv pip install``. uv does not read pip's
configuration, so the package sources pip would use on this machine are read from
``pip config list`` (and the ``PIP_*`` environment variables) at run time and passed to uv
explicitly: ``index-url``, ``extra-index-url``, ``find-links``, ``constraint`` and ``cert``. Where pip
has no such settings, uv uses PyPI, as pip would. uv is told to pick the best match over all sources
(pip's behaviour), not the first source that knows a package's name.

If anything in the uv route fails, it says so and installs the same files with plain pip instead.
``--installer pip`` uses pip only. The exit code is non-zero only if the chosen route and the
fallback both fail.
"""

from __future__ import annotations

import argparse
import os
import shlex
import subprocess
import sys
import time
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
UV_VERSION = "0.13.8"
# pip option -> uv option, for the settings that decide where packages come from.
SOURCE_OPTIONS = {
    "index-url": "--index-url",
    "extra-index-url": "--extra-index-url",
    "find-links": "--find-links",
    "constraint": "--constraint",
}


def pip_settings(python: str) -> dict[str, list[str]]:
    """pip's effective source settings: ``pip config list`` (every scope) plus PIP_* variables."""
    found: dict[str, list[str]] = {}

    def add(key: str, value: str):
        key = key.replace("_", "-").lower()
        for item in shlex.split(value):
            if item not in found.setdefault(key, []):
                found[key].append(item)

    try:
        out = subprocess.run([python, "-m", "pip", "config", "list"], capture_output=True, text=True,
                             check=True, timeout=60).stdout
    except (OSError, subprocess.SubprocessError):
        out = ""
    for line in out.splitlines():
        name, sep, value = line.partition("=")
        if not sep:
            continue
        key = name.rsplit(".", 1)[-1]  # "global.find-links", ":env:.find-links" -> "find-links"
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        add(key, value)
    for var, value in os.environ.items():
        if var.startswith("PIP_") and value:
            add(var[4:], value)
    return found


def uv_source_args(settings: dict[str, list[str]]) -> tuple[list[str], dict[str, str]]:
    """uv command-line options and environment for pip's settings; sources that do not exist here are skipped."""
    args, env = [], {}
    for key, option in SOURCE_OPTIONS.items():
        values = settings.get(key, [])
        if key == "index-url":
            values = values[:1]  # pip takes one index-url; a second one is an extra index to uv as well
        for v in values:
            local = v[len("file://"):] if v.startswith("file://") else (v if "://" not in v else None)
            if local is not None and not Path(local).exists():
                print(f"setup: pip's {key} {v} does not exist here; not passed to uv")
                continue
            args += [option, v]
    certs = [c for c in settings.get("cert", []) if Path(c).is_file()]
    if certs:
        env["SSL_CERT_FILE"] = certs[0]  # uv then trusts the same certificates as pip
    if settings.get("default-timeout"):
        env["UV_HTTP_TIMEOUT"] = settings["default-timeout"][0]
    return args, env


def run(cmd: list[str], env: dict | None = None, label: str | None = None) -> bool:
    print("setup: " + (label or " ".join(shlex.quote(c) for c in cmd)), flush=True)
    return subprocess.run(cmd, cwd=ROOT, env={**os.environ, **(env or {})}).returncode == 0


def install_with_pip(py: str) -> bool:
    quiet = ["--quiet", "--disable-pip-version-check"]
    return (run([py, "-m", "pip", "install", *quiet, "-r", "requirements.txt"])
            and run([py, "-m", "pip", "install", *quiet, "--no-deps", "--no-build-isolation", "-e", "."]))


def install_with_uv(py: str, uv_version: str) -> bool:
    if not run([py, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", f"uv=={uv_version}"]):
        return False
    uv = str(Path(py).parent / "uv")
    args, env = uv_source_args(pip_settings(py))
    common = ["--python", py, "--index-strategy", "unsafe-best-match", *args]
    return (run([uv, "pip", "install", *common, "-r", "requirements.txt"], env)
            and run([uv, "pip", "install", *common, "--no-deps", "--no-build-isolation", "-e", "."], env))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--venv", default=".venv")
    ap.add_argument("--installer", choices=["uv", "pip"], default="uv")
    ap.add_argument("--uv-version", default=UV_VERSION)
    args = ap.parse_args(argv)

    t0 = time.monotonic()
    env_dir = (ROOT / args.venv) if not Path(args.venv).is_absolute() else Path(args.venv)
    py = env_dir / "bin" / "python"
    if not py.exists():
        print(f"setup: creating {env_dir}")
        venv.create(env_dir, with_pip=True)
    py = str(py)
    ok, used = False, args.installer
    if args.installer == "uv":
        ok = install_with_uv(py, args.uv_version)
        if not ok:
            print("setup: the uv route failed; installing the same pinned files with pip instead", flush=True)
    if not ok:
        ok, used = install_with_pip(py), "pip"
    # Never a CUDA build: the pinned torch must be the CPU one, and no nvidia-* wheel may have come with it.
    check = ("import importlib.metadata as m, torch; "
             "bad = sorted(d.metadata['Name'] for d in m.distributions() if d.metadata['Name'].lower().startswith('nvidia')); "
             "assert torch.version.cuda is None and not bad, (torch.__version__, torch.version.cuda, bad); "
             "print('setup: torch', torch.__version__, '(CPU build)')")
    ok = ok and run([py, "-c", check], label="checking that torch is the CPU build and no nvidia-* package came in")
    print(f"setup: {'done' if ok else 'FAILED'} in {time.monotonic() - t0:.0f} s ({used})")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
