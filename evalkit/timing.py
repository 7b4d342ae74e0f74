"""Wall-clock seconds and peak memory of the stages of a run, for benchmarks (``benchmarks/evalkit_scale.py``).

With ``EVALKIT_STAGE_LOG=FILE`` set, every ``stage(name)`` block appends one JSON line to FILE when it ends:
``{"stage": name, "seconds": wall seconds (float), "peak_rss_mb": the process's peak resident memory so far (MiB,
``getrusage``'s ``ru_maxrss``), "rss_mb": resident memory at the end of the stage (MiB, ``/proc/self/statm``; None
where there is no /proc), "depth": how many stages enclose it (0: top level), "pid": process id}``. Unset (the
default), a stage costs one environment lookup. Each line is written by the process that ran it (under torchrun, one
line per process); a stage that runs several times (per reference generator) writes one line each time.
"""

from __future__ import annotations

import json
import os
import resource
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

STAGE_LOG_ENV = "EVALKIT_STAGE_LOG"
_MAXRSS_UNIT = 1 if sys.platform == "darwin" else 1024  # ru_maxrss: bytes on macOS, KiB on Linux
_depth = 0


def current_rss_mb() -> float | None:
    """Resident memory of this process now, MiB (None where /proc is missing)."""
    try:
        pages = int(Path("/proc/self/statm").read_text().split()[1])
    except (OSError, ValueError, IndexError):
        return None
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far, MiB."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * _MAXRSS_UNIT / 2**20


@contextmanager
def stage(name: str) -> Iterator[None]:
    """Time the block as stage ``name`` (logged only when ``EVALKIT_STAGE_LOG`` names a file)."""
    target = os.environ.get(STAGE_LOG_ENV)
    if not target:
        yield
        return
    global _depth
    start = time.perf_counter()
    _depth += 1
    try:
        yield
    finally:
        _depth -= 1
        line = {"stage": name, "seconds": time.perf_counter() - start, "peak_rss_mb": peak_rss_mb(),
                "rss_mb": current_rss_mb(), "depth": _depth, "pid": os.getpid()}
        with open(target, "a", encoding="utf-8") as handle:
            handle.write(json.dumps(line) + "\n")
