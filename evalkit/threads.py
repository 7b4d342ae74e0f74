"""CPU threads for a compute stage: as many as there are cores nobody else is using, never more.

Why: on a shared machine, an intra-op pool as wide as the machine is slowed several times over when other processes
hold some of the cores, because every parallel operator waits at its barrier for the thread that was descheduled
(measured for the dlib face network on 2 cores with one core busy elsewhere: 24.6 ms per image with 2 threads against
6.1 ms with 1; see benchmarks/face_descriptors.py). With no more threads than free cores, a loaded machine slows a
run in proportion to the load instead.

The bound is the smallest of: the process's current torch setting (``OMP_NUM_THREADS`` or ``torch.set_num_threads``,
so a user's or a test's choice is kept), the CPUs this process may run on (affinity and a cgroup v2 ``cpu.max``
quota) divided among the processes of a torchrun launch on this node (``LOCAL_WORLD_SIZE``), and those CPUs less the
threads of other processes that are runnable right now (``/proc/loadavg``'s runnable count, less this process's
own running threads, averaged over a few samples). At least one thread.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import torch
from threadpoolctl import threadpool_limits

LOAD_SAMPLES = 5
LOAD_SAMPLE_INTERVAL_S = 0.002


def usable_cpus() -> int:
    """CPUs this process may run on: its affinity mask, capped by a cgroup v2 CPU quota when one is set."""
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    try:
        quota, period = Path("/sys/fs/cgroup/cpu.max").read_text().split()[:2]
        if quota != "max":
            cpus = min(cpus, max(1, math.floor(int(quota) / int(period))))
    except (OSError, ValueError):
        pass
    return max(1, cpus)


def _own_running_threads() -> int:
    running = 0
    for task in Path("/proc/self/task").iterdir():
        try:
            stat = (task / "stat").read_text()
        except OSError:  # the thread ended while we looked
            continue
        running += stat[stat.rindex(")") + 2] == "R"  # state follows the parenthesised command name
    return running


def other_running_threads(samples: int = LOAD_SAMPLES, interval_s: float = LOAD_SAMPLE_INTERVAL_S) -> float | None:
    """Mean number of runnable threads of other processes, machine-wide; None where /proc cannot tell (not Linux)."""
    counts = []
    try:
        for k in range(samples):
            if k:
                time.sleep(interval_s)
            running = int(Path("/proc/loadavg").read_text().split()[3].split("/")[0])
            counts.append(max(0, running - _own_running_threads()))
    except (OSError, ValueError, IndexError):
        return None
    return sum(counts) / len(counts)


def compute_threads() -> int:
    """Threads for a CPU compute stage of this process now (see the module docstring)."""
    cpus = usable_cpus()
    share = max(1, cpus // max(1, int(os.environ.get("LOCAL_WORLD_SIZE", "1"))))
    others = other_running_threads()
    free = cpus if others is None else math.floor(cpus - others + 0.5)
    return max(1, min(torch.get_num_threads(), share, free))


@contextmanager
def cpu_threads(threads: int) -> Iterator[int]:
    """Run the block with ``threads`` torch intra-op threads and OpenMP/BLAS pools of that size; restored after."""
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        with threadpool_limits(limits=threads):
            yield threads
    finally:
        torch.set_num_threads(before)
