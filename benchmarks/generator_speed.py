"""Wav2Pix training and inference throughput on this machine's CPU (64 px, 1 s, batch 64).

Compares the product's training step (generator.training.GanStep) and inference (generator.synthesis.generate) with a
plain eager baseline written the way the original code runs: a fresh generator forward for each of the D and G
steps, three separate discriminator calls, no detach in the D step, and inference as a plain forward under no_grad.
Synthetic inputs of the real shapes: the speed of the networks does not depend on the values.

    python benchmarks/generator_speed.py [--steps 6] [--warmup 2] [--only train-product|train-baseline|infer-...]

The last line is JSON: pairs/s and clips/s for both, and the ratios.
"""

from __future__ import annotations

import argparse
import json
import time

import torch
import torch.nn.functional as F

from generator.model import Discriminator, Generator, ModelConfig, init_weights
from generator.synthesis import generate
from generator.training import Batch, GanStep, TrainConfig

BATCH = 64


def make_models(seed: int = 0) -> tuple[Generator, Discriminator, torch.optim.Adam, torch.optim.Adam, TrainConfig]:
    torch.manual_seed(seed)
    config = TrainConfig(manifest="synthetic")
    G, D = Generator(ModelConfig(64, 1.0, 2)), Discriminator(ModelConfig(64, 1.0, 2))
    init_weights(G)
    init_weights(D)
    opt_g = torch.optim.Adam(G.parameters(), lr=config.lr_g, betas=tuple(config.betas))
    opt_d = torch.optim.Adam(D.parameters(), lr=config.lr_d, betas=tuple(config.betas))
    return G, D, opt_g, opt_d, config


def make_batch() -> Batch:
    return Batch(
        torch.randn(BATCH, 1, 16000), torch.rand(BATCH, 3, 64, 64) * 2 - 1, torch.rand(BATCH, 3, 64, 64) * 2 - 1,
        torch.randint(0, 2, (BATCH,)),
    )


def baseline_step(G, D, opt_g, opt_d, config: TrainConfig, batch: Batch) -> None:
    fake, e, _ = G(batch.speech)
    d_real, _ = D(batch.face, e)
    d_fake, _ = D(fake, e)
    d_wrong, _ = D(batch.wrong, e)
    d_loss = (F.mse_loss(d_real, torch.full_like(d_real, config.real_label)) + F.mse_loss(d_fake, 0 * d_fake)
              + F.mse_loss(d_wrong, 0 * d_wrong))
    D.zero_grad()
    d_loss.backward()
    opt_d.step()
    G.zero_grad()
    fake, e, logits = G(batch.speech)
    g_score, fake_features = D(fake, e)
    _, real_features = D(batch.face, e)
    g_loss = (F.mse_loss(g_score, torch.ones_like(g_score))
              + config.feature_matching_weight * F.mse_loss(fake_features.mean(0), real_features.mean(0).detach())
              + config.l1_weight * F.l1_loss(fake, batch.face)
              + config.classifier_weight * F.cross_entropy(logits, batch.label))
    g_loss.backward()
    opt_g.step()


def time_calls(fn, steps: int, warmup: int) -> float:
    for _ in range(warmup):
        fn()
    start = time.perf_counter()
    for _ in range(steps):
        fn()
    return (time.perf_counter() - start) / steps


def measure(kind: str, steps: int, warmup: int) -> float:
    """Items per second for one of train-baseline, train-product, infer-baseline, infer-product."""
    G, D, opt_g, opt_d, config = make_models()
    batch = make_batch()
    if kind == "train-baseline":
        seconds = time_calls(lambda: baseline_step(G, D, opt_g, opt_d, config, batch), steps, warmup)
    elif kind == "train-product":
        step = GanStep(G, D, opt_g, opt_d, config)
        seconds = time_calls(lambda: step(batch), steps, warmup)
    elif kind == "infer-baseline":
        def plain() -> None:
            with torch.no_grad():
                G(batch.speech)
        seconds = time_calls(plain, steps, warmup)
    elif kind == "infer-product":
        seconds = time_calls(lambda: generate(G, batch.speech, "eval"), steps, warmup)
    else:
        raise SystemExit(f"unknown benchmark {kind!r}")
    return BATCH / seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--only", choices=["train-baseline", "train-product", "infer-baseline", "infer-product"])
    args = parser.parse_args()
    kinds = [args.only] if args.only else ["train-baseline", "train-product", "infer-baseline", "infer-product"]
    results = {}
    for kind in kinds:
        results[kind] = measure(kind, args.steps if kind.startswith("train") else 5 * args.steps, args.warmup)
        print(f"{kind}: {results[kind]:.1f} {'pairs' if kind.startswith('train') else 'clips'}/s", flush=True)
    summary = {
        "device": "cpu",
        "threads": torch.get_num_threads(),
        "batch": BATCH,
        "image_size": 64,
        "audio_seconds": 1.0,
        "train_pairs_per_s": results.get("train-product"),
        "train_pairs_per_s_baseline": results.get("train-baseline"),
        "infer_clips_per_s": results.get("infer-product"),
        "infer_clips_per_s_baseline": results.get("infer-baseline"),
    }
    for name in ("train", "infer"):
        if f"{name}-product" in results and f"{name}-baseline" in results:
            summary[f"{name}_speedup"] = results[f"{name}-product"] / results[f"{name}-baseline"]
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
