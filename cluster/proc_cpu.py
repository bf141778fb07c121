"""Where the CPU goes: CPU time of every process on this machine, grouped by what it is.

A benchmark takes a snapshot before and after a phase; the difference, divided by the
requests the phase served, is the CPU each request cost in each process (the load client,
HAProxy, each Serve replica, Ray's own daemons). Linux only (/proc); elsewhere it is empty.
"""
from __future__ import annotations

import os
from collections import defaultdict
from pathlib import Path

TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def label(pid: int, argv: list[str]) -> str:
    """A name that groups processes of one kind: Ray's process titles ("ray::ServeReplica:
    engram:Router"), a Python module (-m name), else the program's name."""
    if pid == os.getpid():
        return "this process (load client)"
    if not argv:
        return "?"
    first = argv[0]
    if first.startswith("ray::"):
        return first.split()[0]
    if first.startswith("postgres: ") and "(" in first:
        # PostgreSQL titles each client's backend "postgres: user db host(port) state".
        return "postgres: client backends"
    if "-m" in argv[:-1]:
        return f"python -m {argv[argv.index('-m') + 1]}"
    name = Path(first).name
    if name.startswith("python") and len(argv) > 1:
        return f"{name} {Path(argv[1]).name}"
    return name


def snapshot() -> dict[int, tuple[str, float]]:
    """pid -> (label, CPU seconds so far, user + system, all threads)."""
    out: dict[int, tuple[str, float]] = {}
    for entry in Path("/proc").glob("[0-9]*"):
        try:
            stat = (entry / "stat").read_text()
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:  # gone meanwhile, or not ours to read
            continue
        fields = stat[stat.rindex(")") + 2:].split()  # after "(comm)", which may hold spaces
        seconds = (int(fields[11]) + int(fields[12])) / TICKS  # utime, stime
        pid = int(entry.name)
        out[pid] = (label(pid, [a.decode(errors="replace") for a in argv if a]), seconds)
    return out


def cpu_by_label(before: dict[int, tuple[str, float]],
                 after: dict[int, tuple[str, float]]) -> dict[str, float]:
    """CPU seconds spent between two snapshots, per label, most first. A process born
    meanwhile counts from zero; one that died meanwhile is lost (its time is not known)."""
    spent: dict[str, float] = defaultdict(float)
    for pid, (name, seconds) in after.items():
        start = before.get(pid, (name, 0.0))[1]
        if seconds > start:
            spent[name] += seconds - start
    return dict(sorted(spent.items(), key=lambda kv: -kv[1]))
