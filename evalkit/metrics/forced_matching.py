"""Forced matching 1:2 and 1:N (Nagrani et al., CVPR 2018; Wen et al., NeurIPS 2019): the generated face is shown
with the true speaker's real face (its clip's own real face) and N-1 impostor faces of other identities; the choice
is correct when the true speaker's face is the most similar (cosine of dlib descriptors). Impostors come from the
gallery of ``evalkit.gallery`` (M faces per identity) and are of the speaker's gender when the manifests give both
genders (``gender`` column; identities of unknown gender are then not drawn).

Each clip's value is the exact probability of a correct choice over all draws of N-1 distinct impostor identities
(uniformly among the eligible m) and one face of each (uniformly among its M): with p_X the share of X's faces less
similar to the generated face than the true face (ties count half), P = e_{N-1}(p) / C(m, N-1), e_k the elementary
symmetric polynomial of the eligible identities' p_X. No Monte-Carlo noise. A figure is the mean of P over the
split's clips (bootstrap interval over clips).

N is ``RunOptions.matching_n`` (5), lowered to 1 + the fewest eligible impostor identities of any speaker. Chance:
``chance_uniform`` 1/N; ``chance`` the voice-blind level: the mean of P when each generated face is matched against the
true face (and impostors) of a random clip of the split instead of its own, which a face that ignores the voice
reaches whatever it looks like (the gallery's distractors may look unlike the evaluated speakers, which lifts a
voice-blind face above 1/N).
"""

from __future__ import annotations

from collections.abc import Iterator
from math import comb

import numpy as np

from evalkit.gallery import Gallery, split_gallery, unit_rows
from evalkit.metrics import Metric, MetricContext, register
from evalkit.stats import mean_figure


def impostor_identities(gallery: Gallery, identity: int) -> np.ndarray:
    """Gallery identities that may stand as impostors for ``identity``: every other one, or the others of its gender
    when its gender is known."""
    others = np.array([x for x in range(len(gallery)) if x != identity], dtype=np.int64)
    gender = gallery.genders[identity]
    return others if not gender else others[[gallery.genders[x] == gender for x in others]]


def elementary_symmetric(p: list[np.ndarray], k: int) -> np.ndarray:
    """e_k(p_1, ..., p_m) elementwise over arrays of one shape (dynamic programming, O(m k))."""
    e = [np.ones_like(p[0])] + [np.zeros_like(p[0]) for _ in range(k)]
    for px in p:
        for j in range(k, 0, -1):
            e[j] = e[j] + px * e[j - 1]
    return e[k]


BLOCK_BYTES = 64 * 2**20  # float64 working memory of one block of queries (their (b, t) arrays, one per identity)


def matching_probabilities(queries: np.ndarray, true_faces: np.ndarray, true_identity: np.ndarray,
                           gallery: Gallery, n_way: int, block: int | None = None
                           ) -> Iterator[tuple[slice, np.ndarray]]:
    """Blocks (rows of the queries, (b, t) probabilities) of the probability that query row q picks true face f in a
    1:``n_way`` forced choice, for every query (n, d) and every candidate true face (t, d) of identity
    ``true_identity[f]`` (gallery positions). ``block`` queries at a time (default: ``BLOCK_BYTES`` of working
    arrays), so the (n, t) matrix is never held: memory stays flat however many clips."""
    q_all = unit_rows(queries)
    true_unit = unit_rows(true_faces)
    if block is None:
        block = max(1, BLOCK_BYTES // (8 * max(1, len(true_unit)) * (len(gallery) + 3)))
    groups = [(np.flatnonzero(true_identity == identity), impostor_identities(gallery, identity))
              for identity in np.unique(true_identity)]
    for start in range(0, len(q_all), block):
        q = q_all[start:start + block]
        true_cosine = q @ true_unit.T  # (b, t)
        below = {}
        for x in range(len(gallery)):
            cosines = q @ gallery.features[gallery.face_columns(x)].T  # (b, M)
            tally = np.zeros(true_cosine.shape)  # (b, t): faces of x less similar than the true face, ties half
            for column in cosines.T:  # M faces: (b, t) comparisons, no (b, t, M) temporaries
                tally += (column[:, None] < true_cosine) + 0.5 * (column[:, None] == true_cosine)
            below[x] = tally / cosines.shape[1]
        result = np.zeros(true_cosine.shape)
        for columns, eligible in groups:
            p = [below[x][:, columns] for x in eligible]
            result[:, columns] = elementary_symmetric(p, n_way - 1) / comb(len(eligible), n_way - 1)
        yield slice(start, start + len(q)), result


def _computed(ctx: MetricContext, split: str) -> dict:
    memo_key = ("forced_matching", split)
    if memo_key in ctx.memo:
        return ctx.memo[memo_key]
    gallery = split_gallery(ctx, split)
    ev = ctx.evalset
    generated, real = ctx.features("dlib")
    queries = generated["descriptor"][ev.generated_index[split]]
    faces, position = np.unique(ev.paired_real[split], return_inverse=True)
    true_identity = gallery.index(ev.real.identities[faces])
    speakers = np.unique(true_identity)
    eligible = {gallery.identities[s]: len(impostor_identities(gallery, s)) for s in speakers}
    fewest = min(eligible.values())
    computed: dict = {"gallery": gallery, "eligible": eligible, "n_ways": []}
    if fewest >= 1:
        n_ways = sorted({2, min(ctx.options.matching_n, 1 + fewest)})
        weights = np.bincount(position, minlength=len(faces)) / len(position)
        computed["n_ways"] = n_ways
        for n_way in n_ways:  # each clip's own face's probability, and the mean over every face (chance)
            own, chance = np.empty(len(queries)), 0.0
            for rows, p in matching_probabilities(queries, real["descriptor"][faces], true_identity, gallery, n_way):
                own[rows] = p[np.arange(len(p)), position[rows]]
                chance += float((p @ weights).sum())
            computed[n_way] = (own, chance / len(queries))
    ctx.memo[memo_key] = computed
    return computed


def _name(n_way: int) -> str:
    return "1:2" if n_way == 2 else "1:N"


def per_clip(ctx: MetricContext, split: str) -> dict[str, np.ndarray]:
    """{"1:2": probability of a correct choice per clip, "1:N": the same for 1:N (when N > 2)}."""
    computed = _computed(ctx, split)
    return {_name(n): computed[n][0] for n in computed["n_ways"]}


def evaluate(ctx: MetricContext, split: str) -> dict:
    computed = _computed(ctx, split)
    gallery = computed["gallery"]
    if not computed["n_ways"]:
        return {"status": "not applicable",
                "reason": f"a speaker has no eligible impostor identity in the gallery ({computed['eligible']})"}
    result = {}
    for n_way in computed["n_ways"]:
        values, chance = computed[n_way]
        cell = mean_figure(values, chance, ctx.split_clusters(split)[0], ctx.options.bootstrap,
                           ctx.rng("forced_matching", split, str(n_way)), bounds=(0.0, 1.0))
        result[_name(n_way)] = {**cell, "chance_uniform": 1 / n_way, "n_way": n_way}
    speakers = list(computed["eligible"])
    result["impostors"] = {
        "gender_matched": {s: bool(gallery.genders[gallery.index(np.array([s]))[0]]) for s in speakers},
        "eligible_identities": computed["eligible"], "faces_per_identity": gallery.per_identity,
        "n": ctx.options.matching_n, "gallery": gallery.describe(),
    }
    return result


METRIC = register(Metric(
    name="forced_matching",
    description="1:2 and 1:N forced matching of the generated face to the true speaker's real face against "
                "gender-matched impostors (dlib descriptors; higher is better; the default gallery's GRID studio "
                "impostors are out of domain for in-the-wild faces, hence easy: see --gallery)",
    requires="dlib face models (face-recognition-models package)",
    columns=("1:2", "1:N"),
    extractors=lambda options: ("dlib",),
    evaluate=evaluate,
    per_clip=per_clip,
    descriptor_only=True,
))
