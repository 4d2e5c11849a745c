"""Run one phase of ``make test`` and record its wall and CPU time; print the table of phases.

Usage (from the Makefile; standard library only, so it runs before the venv exists):

    python3 scripts/phase.py --reset                      # start a new table
    python3 scripts/phase.py NAME -- COMMAND [ARGS...]    # run COMMAND, record NAME, exit with its status
    python3 scripts/phase.py --report                     # print the table

CPU time is user + system time of the command and all its descendants. Two lower bounds are taken
and the larger reported: ``getrusage(RUSAGE_CHILDREN)`` (everything that was waited for, at every
level) and a sample of ``/proc`` every 0.2 s over the command's process tree (which also sees
processes nobody waits for, such as the Chromium processes behind playwright, whose CPU getrusage
never receives; it misses processes shorter than a sample). The 1-minute load average at the start of each
phase is printed too: on a shared machine, wall time is only comparable at equal load, CPU time
nearly always. The table lives in ``_build/phases.tsv`` (or ``$PHASE_TABLE``); a failing phase is recorded (status != 0)
and the table so far is printed before its exit status is passed on.
"""

from __future__ import annotations

import os
import resource
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TABLE = Path(os.environ.get("PHASE_TABLE", ROOT / "_build" / "phases.tsv"))
HEADER = "phase\twall_s\tcpu_s\tload\tstatus\tcommand"


def cpu_children() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


class TreeSampler(threading.Thread):
    """Samples the CPU time (user + system, own only) of every process below ``root_pid``."""

    def __init__(self, root_pid: int, interval: float = 0.2):
        super().__init__(daemon=True)
        self.root_pid, self.interval = root_pid, interval
        self.seen: dict[tuple[int, int], float] = {}  # (pid, start time) -> last seen CPU seconds
        self.stop = threading.Event()
        self.tick = os.sysconf("SC_CLK_TCK")

    def sample(self):
        stats = {}
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                with open(f"/proc/{entry}/stat") as fh:
                    fields = fh.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            # fields[0] is the state (field 3 of stat): ppid 4, utime 14, stime 15, starttime 22
            stats[int(entry)] = (int(fields[1]), int(fields[11]) + int(fields[12]), int(fields[19]))
        children: dict[int, list[int]] = {}
        for pid, (ppid, _, _) in stats.items():
            children.setdefault(ppid, []).append(pid)
        todo = [self.root_pid]
        while todo:
            pid = todo.pop()
            if pid in stats:
                self.seen[(pid, stats[pid][2])] = stats[pid][1] / self.tick
            todo.extend(children.get(pid, []))

    def run(self):
        while not self.stop.is_set():
            self.sample()
            self.stop.wait(self.interval)

    def total(self) -> float:
        return sum(self.seen.values())


def measure(cmd: list[str]) -> tuple[float, float, float, int]:
    """Run ``cmd``; return (wall s, CPU s of it and its descendants, 1-min load at start, exit status)."""
    load = os.getloadavg()[0]
    cpu0, t0 = cpu_children(), time.monotonic()
    proc = subprocess.Popen(cmd)
    sampler = None
    if os.path.isdir("/proc"):
        sampler = TreeSampler(proc.pid)
        sampler.start()
    status = proc.wait()
    wall = time.monotonic() - t0
    cpu = cpu_children() - cpu0
    if sampler is not None:
        sampler.stop.set()
        sampler.join()
        cpu = max(cpu, sampler.total())
    return wall, cpu, load, status


def read_rows() -> list[list[str]]:
    if not TABLE.exists():
        return []
    return [line.split("\t") for line in TABLE.read_text().splitlines()[1:] if line.strip()]


def report() -> None:
    rows = read_rows()
    if not rows:
        print("phase table: no phases recorded (run make test)")
        return
    width = max(len(r[0]) for r in rows)
    cmdw = max(len(r[5]) for r in rows)
    print(f"\n{'phase':<{width}}  {'wall s':>7}  {'CPU s':>7}  {'load':>5}  {'status':>6}  command")
    for name, wall, cpu, load, status, cmd in rows:
        print(f"{name:<{width}}  {float(wall):7.1f}  {float(cpu):7.1f}  {float(load):5.2f}  {status:>6}  {cmd}")
    print(f"{'total':<{width}}  {sum(float(r[1]) for r in rows):7.1f}  {sum(float(r[2]) for r in rows):7.1f}"
          f"  {'':5}  {'':6}  {'-' * min(cmdw, 7)}")
    print(f"(machine: {os.cpu_count()} cores; load = 1-minute load average when the phase started)")


def main(argv: list[str]) -> int:
    if argv[:1] == ["--reset"]:
        TABLE.parent.mkdir(parents=True, exist_ok=True)
        TABLE.write_text(HEADER + "\n")
        return 0
    if argv[:1] == ["--report"]:
        report()
        return 0
    if len(argv) < 3 or argv[1] != "--":
        print(__doc__, file=sys.stderr)
        return 2
    name, cmd = argv[0], argv[2:]
    wall, cpu, load, status = measure(cmd)
    TABLE.parent.mkdir(parents=True, exist_ok=True)
    if not TABLE.exists():
        TABLE.write_text(HEADER + "\n")
    shown = " ".join(cmd).replace(sys.executable, "python3").replace(str(ROOT) + "/", "")
    with TABLE.open("a") as fh:
        fh.write(f"{name}\t{wall:.2f}\t{cpu:.2f}\t{load:.2f}\t{status}\t{shown}\n")
    print(f"phase {name}: {wall:.1f} s wall, {cpu:.1f} s CPU, load {load:.2f} at start, status {status}", flush=True)
    if status != 0:
        report()
    return status


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
