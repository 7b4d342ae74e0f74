"""Retrieval recall@K: is the true speaker among the K gallery identities whose real faces are nearest the generated
face? Speech2Face (Oh et al., CVPR 2019) ranks the true speaker among a gallery; SF2F (Bai et al., 2022) reports
recall@1..50 over 100 identities. Here: dlib descriptors, cosine, the gallery of ``evalkit.gallery`` (the data's
identities plus ``--gallery`` distractors, M faces each, the query's own photo left out), identity score ``mean`` or
``best`` cosine over the identity's faces (``--gallery-score``).

Figures per split: recall@K for K = 1, 2, 5, 10 below N (Wilson interval over clips) and the mean rank of the true
identity (1 = first; bootstrap interval). Chance levels:

- ``chance``: what a voice-blind generator (its face does not depend on who speaks: a constant face, a random face, a
  mean face of everyone) reaches on these clips: the exact expectation, over re-pairing each generated face with the
  speaker of a random clip of the split, (1/n) sum_q sum_X p_X [X in top-K(q)], p_X = share of the split's clips
  spoken by X. A constant generator scores exactly this.
- ``chance_uniform``: K/N, the literature's level. It is the voice-blind level only when the clips are spread evenly
  over all N identities; with 2 speakers among 10 identities a face that looks like either speaker beats K/N without
  following the voice, so read the figures against ``chance``.

Clips sharing a speaker are not independent draws of speakers: with few speakers the intervals describe these
speakers' clips, not the population of speakers.
"""

from __future__ import annotations

import numpy as np

from evalkit.gallery import Gallery, split_gallery
from evalkit.metrics import Metric, MetricContext, register
from evalkit.stats import Clusters, mean_figure, proportion_figure

RANKS = (1, 2, 5, 10)


def true_ranks(scores: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """0-based rank of each row's true column among the (n, N) ``scores`` (ties counted against the truth)."""
    rows = np.arange(len(scores))
    true_score = scores[rows, truth][:, None]
    return (scores > true_score).sum(axis=1) + (scores == true_score).sum(axis=1) - 1


def voice_blind_recall(scores: np.ndarray, truth: np.ndarray, k: int) -> float:
    """Expected recall@k when each row's truth is replaced by the truth of a random row: (1/n) sum_q sum_X p_X
    [rank of X for q < k], with p_X the share of rows whose truth is X."""
    share = np.bincount(truth, minlength=scores.shape[1]) / len(truth)
    columns = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    return float(share[columns].sum(axis=1).mean())


def _scored(ctx: MetricContext, split: str) -> tuple[Gallery, np.ndarray, np.ndarray]:
    """The split's gallery, the (clips, N) identity scores of its generated faces and each clip's true identity."""
    memo_key = ("retrieval", split)
    if memo_key not in ctx.memo:
        gallery = split_gallery(ctx, split)
        generated, _ = ctx.features("dlib")
        ev = ctx.evalset
        queries = generated["descriptor"][ev.generated_index[split]]
        scores = gallery.identity_scores(queries, ev.paired_real[split], ctx.options.gallery_score)
        truth = gallery.index(ev.generated.identities[ev.generated_index[split]])
        ctx.memo[memo_key] = (gallery, scores, truth)
    return ctx.memo[memo_key]


def per_clip(ctx: MetricContext, split: str) -> dict[str, np.ndarray]:
    """{"recall@K": 0/1 per clip for each K below N, "rank": 1-based rank of the true identity per clip}."""
    gallery, scores, truth = _scored(ctx, split)
    ranks = true_ranks(scores, truth)
    values = {f"recall@{k}": (ranks < k).astype(np.float64) for k in RANKS if k < len(gallery)}
    return {**values, "rank": ranks + 1.0}


def _figures(ctx: MetricContext, scores: np.ndarray, truth: np.ndarray, gallery: Gallery, clusters: Clusters,
             *names: str) -> dict:
    ranks = true_ranks(scores, truth)
    n_identities = len(gallery)
    result = {}
    for k in (k for k in RANKS if k < n_identities):
        cell = proportion_figure(ranks < k, voice_blind_recall(scores, truth, k), clusters, ctx.options.bootstrap,
                                 ctx.rng("retrieval", str(k), *names))
        result[f"recall@{k}"] = {**cell, "chance_uniform": k / n_identities}
    share = np.bincount(truth, minlength=n_identities) / len(truth)
    order = np.argsort(np.argsort(-scores, axis=1, kind="stable"), axis=1) + 1.0  # each identity's 1-based rank
    result["mean_rank"] = mean_figure(ranks + 1.0, float((order @ share).mean()), clusters, ctx.options.bootstrap,
                                      ctx.rng("retrieval rank", *names), bounds=(1.0, float(n_identities)))
    result["gallery"] = {**gallery.describe(), "score": ctx.options.gallery_score,
                         "omitted": [f"recall@{k}" for k in RANKS if k >= n_identities]}
    return result


def evaluate(ctx: MetricContext, split: str) -> dict:
    gallery, scores, truth = _scored(ctx, split)
    return _figures(ctx, scores, truth, gallery, ctx.split_clusters(split)[0], split)


def reference(ctx: MetricContext) -> dict:
    """Real faces as queries: the distinct real faces of the first evaluated split against its gallery (each left
    out of its own identity's faces): the ceiling that the gallery and the face descriptor allow."""
    _, real = ctx.features("dlib")
    split = ctx.evalset.splits[0]
    faces = np.unique(ctx.evalset.real_index[split])
    gallery = split_gallery(ctx, split)
    scores = gallery.identity_scores(real["descriptor"][faces], faces, ctx.options.gallery_score)
    truth = gallery.index(ctx.evalset.real.identities[faces])
    return {**_figures(ctx, scores, truth, gallery, Clusters.singletons(len(truth)), "real"), "split": split}


METRIC = register(Metric(
    name="retrieval",
    description="recall@K of the true speaker among the gallery's N identities (dlib descriptors, cosine; chance: "
                "a voice-blind generator's level; higher is better; the default gallery's GRID studio distractors "
                "are out of domain for in-the-wild faces, hence easy: see --gallery)",
    requires="dlib face models (face-recognition-models package)",
    columns=("recall@1", "recall@5"),
    extractors=lambda options: ("dlib",),
    evaluate=evaluate,
    reference=reference,
    per_clip=per_clip,
    descriptor_only=True,
))
