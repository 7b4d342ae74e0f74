"""``evalkit report RUN_DIR`` speed: wall seconds of the whole command (start-up included), on a copy of a run folder.

Two cases: ``current`` (the folder's report_files/ already hold every figure, as after ``evalkit run``: nothing is
drawn) and ``fresh`` (report_files/ removed first: every figure is drawn). Also the size of the self-contained
report.html and how much of it is embedded speech. Target (issue 18): ``current`` <= 2 s on the embedded set.

    python benchmarks/report_render.py RUN_DIR [--repeats 5]

The last line is JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def timed_report(run_dir: Path) -> float:
    """Wall seconds of one ``python -m evalkit report run_dir`` in a fresh process."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "evalkit", "report", str(run_dir)], check=True, env=env,
                   stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run_dir", type=Path, help="a folder written by evalkit run")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        copy = Path(shutil.copytree(args.run_dir, Path(tmp) / "run"))
        fresh = []
        for _ in range(args.repeats):
            shutil.rmtree(copy / "report_files", ignore_errors=True)
            fresh.append(timed_report(copy))
        current = [timed_report(copy) for _ in range(args.repeats)]
        html = (copy / "report.html").read_text(encoding="utf-8")
    speech = sum(len(m) for m in re.findall(r'src="data:audio/[^"]+"', html))
    result = {"current_s": statistics.median(current), "fresh_s": statistics.median(fresh),
              "current_runs_s": [round(x, 3) for x in current], "fresh_runs_s": [round(x, 3) for x in fresh],
              "html_bytes": len(html.encode()), "embedded_speech_bytes": speech, "load": os.getloadavg()}
    print(f"evalkit report, figures current: {result['current_s']:.2f} s (median of {args.repeats}); "
          f"figures drawn afresh: {result['fresh_s']:.2f} s; report.html {result['html_bytes'] / 1e6:.2f} MB, "
          f"of which speech {speech / 1e6:.2f} MB")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
