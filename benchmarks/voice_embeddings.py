"""Voice-only reference speed on this machine's CPU: resemblyzer speaker embeddings of the embedded evaluation set's
clips per wall-clock second (``VoiceEncoderFeatures.extract``, what a cold run of ``evalkit run`` computes for the
voice-only reference: VAD trimming, mel spectrograms, the 3-layer LSTM over 1.6 s partials).

The first call includes librosa's one-off lazy imports and numba loading (reported apart: ``first_call_seconds``);
the repeats after it are the steady rate. Threads follow ``evalkit.threads`` (free cores, decided per batch), so
state the load average beside the figures.

    python benchmarks/voice_embeddings.py [--clips 875] [--repeats 2] [--seconds 1.0]

The last line is JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time

from evalkit.generators.voice_only import VoiceEncoderFeatures, speech_rows
from evalkit.options import EMBEDDED_DATA
from generator.data.manifest import read_manifest


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clips", type=int, default=None, help="first N clips of the embedded set (default: all)")
    parser.add_argument("--repeats", type=int, default=2, help="timed calls after the first")
    parser.add_argument("--seconds", type=float, default=1.0, help="speech length fed to the encoder")
    args = parser.parse_args()
    if not EMBEDDED_DATA.is_file():
        raise SystemExit(f"{EMBEDDED_DATA}: embedded evaluation set not found")
    pairs = read_manifest(EMBEDDED_DATA).pairs[: args.clips]
    rows = speech_rows(pairs, args.seconds)
    encoder = VoiceEncoderFeatures()
    walls = []
    for _ in range(1 + args.repeats):
        start = time.perf_counter()
        encoder.extract(rows)
        walls.append(time.perf_counter() - start)
    steady = statistics.median(walls[1:]) if args.repeats else walls[0]
    print(f"first call: {len(rows)} clips in {walls[0]:.2f} s; then median {steady:.2f} s "
          f"({len(rows) / steady:.1f} clips per s)")
    print(json.dumps({
        "benchmark": "voice_embeddings", "clips": len(rows), "seconds": args.seconds, "cpus": os.cpu_count(),
        "load_average": os.getloadavg()[0], "first_call_seconds": round(walls[0], 3),
        "wall_seconds_median": round(steady, 3), "wall_seconds": [round(w, 3) for w in walls[1:]],
        "clips_per_second": round(len(rows) / steady, 2),
    }))


if __name__ == "__main__":
    main()
