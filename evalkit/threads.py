"""CPU threads for a compute stage: as many as there are cores nobody else is using, never more.

Why: on a shared machine, an intra-op pool as wide as the machine is slowed several times over when other processes
hold some of the cores, because every parallel operator waits at its barrier for the thread that was descheduled
(benchmarks/face_descriptors.py, dlib's face network on a 2-core machine shared with other jobs: 12.9 ms per image
with 2 threads against 6.6 ms with 1 at load average 2-3, 101 ms against 30 ms at load 7-14). With no more threads
than free cores, a loaded machine slows a run in proportion to the load instead.

The bound is the smallest of: the process's current torch setting (``OMP_NUM_THREADS`` or ``torch.set_num_threads``,
so a user's or a test's choice is kept), the CPUs this process may run on (affinity and a cgroup v2 ``cpu.max``
quota) divided among the processes of a torchrun launch on this node (``LOCAL_WORLD_SIZE``), and the cores other
processes left free: those CPUs less the mean number of other processes' runnable threads (``/proc/loadavg``'s
runnable count less this process's own running threads), sampled while this process does single-threaded work
between its parallel pieces (for the dlib extractor: after each face detection, so the count covers the last half
second or so at no cost), and decided again for every piece. At least one thread.

Pools are limited through one ``threadpoolctl.ThreadpoolController`` (``limited_pools``): constructing one scans every
loaded shared library (~4 ms), which a ``threadpool_limits(...)`` per call repeated 1,200 times in a run; the scan is
redone only when modules were imported since (a new extension may bring a new pool).

Threads of one process: torch's intra-op setting and OpenMP's thread count belong to the calling thread (an OpenMP
ICV), so each thread sets and restores its own. A BLAS pool (OpenBLAS, MKL, BLIS) is one per process, and two threads
that each limit it and restore "their" previous value on exit can leave it limited after both (a background thread's
block ending inside the main thread's); OpenBLAS 0.3.31 (numpy's) even ignores a second thread's setting once the
main thread has made one (measured). So only the main thread limits BLAS pools; a background thread's
``limited_pools`` limits its own OpenMP pool, and its ``cpu_threads`` its torch threads.
"""

from __future__ import annotations

import math
import os
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from pathlib import Path

from threadpoolctl import ThreadpoolController

BURST_SAMPLES = 10
BURST_INTERVAL_S = 0.002
IDLE_TOLERANCE = 0.1


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


def other_running_threads() -> int | None:
    """Runnable threads of other processes at this instant, machine-wide; None where /proc cannot tell (not Linux)."""
    try:
        running = int(Path("/proc/loadavg").read_text().split()[3].split("/")[0])
        return max(0, running - _own_running_threads())
    except (OSError, ValueError, IndexError):
        return None


class FreeCores:
    """Counts other processes' runnable threads while this process works single-threaded (``sample`` after each
    small piece, ~0.1 ms a call), then says how many threads the next parallel piece may use (``threads``)."""

    def __init__(self) -> None:
        self.samples: list[int] = []

    def sample(self) -> None:
        others = other_running_threads()
        if others is not None:
            self.samples.append(others)

    def threads(self) -> int:
        """Threads for the next parallel piece, from the samples since the last call (or a short burst of samples
        when there were none)."""
        if not self.samples:
            for k in range(BURST_SAMPLES):
                time.sleep(BURST_INTERVAL_S if k else 0)
                self.sample()
        others = sum(self.samples) / len(self.samples) if self.samples else None
        self.samples = []
        return compute_threads(others)


def compute_threads(others: float | None) -> int:
    """Threads for a CPU compute stage of this process, given the mean number of other processes' runnable threads
    (None: unknown, only affinity, quota, torchrun and the torch setting count)."""
    import torch  # here, not at the top: the torch-free command layer imports this module (through evalkit.stats)

    cpus = usable_cpus()
    share = max(1, cpus // max(1, int(os.environ.get("LOCAL_WORLD_SIZE", "1"))))
    # A core counts as free only when others ran on it less than IDLE_TOLERANCE of the time: a thread that loses its
    # core stalls every barrier of a parallel operator (several times slower), one thread fewer costs at most 1/N.
    free = cpus if others is None else math.floor(cpus - others + IDLE_TOLERANCE)
    return max(1, min(torch.get_num_threads(), share, free))


_controller: tuple[int, ThreadpoolController] | None = None


def pool_controller() -> ThreadpoolController:
    """The process's thread-pool controller, built on first use and rebuilt only when the number of imported modules
    changed since (a library loaded later would otherwise escape the limits)."""
    global _controller
    if _controller is None or _controller[0] != len(sys.modules):
        controller = ThreadpoolController()
        _controller = (len(sys.modules), controller)
    return _controller[1]


def limited_pools(threads: int, user_api: str | None = None) -> AbstractContextManager:
    """A context manager limiting the native thread pools (``user_api``: "blas", "openmp" or None for both) to
    ``threads`` for its block, restored after (threadpoolctl's ``ThreadpoolController.limit``). Outside the main
    thread only its own OpenMP pool (module docstring: the process's BLAS pools are the main thread's to set)."""
    if threading.current_thread() is not threading.main_thread():
        if user_api == "blas":
            return nullcontext()
        user_api = "openmp"
    return pool_controller().limit(limits=threads, user_api=user_api)


@contextmanager
def cpu_threads(threads: int) -> Iterator[int]:
    """Run the block with ``threads`` torch intra-op threads and OpenMP/BLAS pools of that size; restored after."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        with limited_pools(threads):
            yield threads
    finally:
        torch.set_num_threads(before)
