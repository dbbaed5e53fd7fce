"""What every benchmark prints first: the machine it ran on."""

from __future__ import annotations

import os
import platform
import sys


def describe() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next((ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name")), cpu)
    except OSError:
        pass
    mem = ""
    try:
        with open("/proc/meminfo") as f:
            kb = int(next(ln for ln in f if ln.startswith("MemTotal")).split()[1])
        mem = f", {kb / 2**20:.1f} GiB RAM"
    except (OSError, StopIteration):
        pass
    return (
        f"machine: {cpu}, {os.cpu_count()} cores{mem}; Python {platform.python_version()} "
        f"({platform.system()} {platform.release()}); {sys.executable}"
    )
