"""Nearest-neighbour lookups on face descriptors with memory flat in the number of rows.

Brute force (a space-partition tree does not beat it on 128-d descriptors): O(n m d) time for n queries and m rows,
by SciPy's "sqeuclidean" ``cdist`` (sums of squared differences, so a near copy's distance carries no cancellation
error, as the |a|^2 + |b|^2 - 2 a.b expansion does), a block of queries of ``NEIGHBOUR_MEMORY_MB`` at a time. Used
by the memorization metric and the run's paired gallery. Why not scikit-learn's ``pairwise_distances_chunked``,
which does the same blocking over ``cdist``: importing ``sklearn.metrics`` costs 0.65 s, and the paired gallery is
computed by every run, a re-run of a cached evaluation included (whose target is 5 s).
"""

from __future__ import annotations

import numpy as np
from scipy.spatial.distance import cdist

NEIGHBOUR_MEMORY_MB = 64  # working memory of one block of query-to-row distances


def nearest(queries: np.ndarray, rows: np.ndarray, exclude: np.ndarray | None = None
            ) -> tuple[np.ndarray, np.ndarray]:
    """Each query's nearest row: its squared Euclidean distance (n,) float64 and its row (n,) int64 (inf and -1
    when there is no row). ``exclude`` (n,) int64: a row never counted for that query (-1: none), e.g. itself.

    Blocks of queries of ``NEIGHBOUR_MEMORY_MB`` (module docstring)."""
    distance, index = np.full(len(queries), np.inf), np.full(len(queries), -1, dtype=np.int64)
    if not len(queries) or not len(rows):
        return distance, index
    queries, rows = np.asarray(queries, np.float64), np.asarray(rows, np.float64)
    step = max(1, int(NEIGHBOUR_MEMORY_MB * 2**20) // (8 * len(rows)))
    for start in range(0, len(queries), step):
        block = cdist(queries[start : start + step], rows, "sqeuclidean")
        if exclude is not None:
            own = exclude[start : start + len(block)]
            hit = np.flatnonzero(own >= 0)
            block[hit, own[hit]] = np.inf
        best = block.argmin(axis=1)
        near = block[np.arange(len(block)), best]
        distance[start : start + len(block)] = near
        index[start : start + len(block)] = np.where(np.isfinite(near), best, -1)
    return distance, index


def nearest_in_group(queries: np.ndarray, query_groups: np.ndarray, rows: np.ndarray, row_groups: np.ndarray,
                     exclude: np.ndarray | None = None) -> np.ndarray:
    """Squared Euclidean distance (n,) float64 of each query to its nearest row of the same group (identity, cell):
    inf when its group has no row. ``exclude`` (n,) int64: a row (of ``rows``) never counted for that query, -1
    none. ``nearest`` per group."""
    distance = np.full(len(queries), np.inf)
    for group in np.unique(query_groups):
        mine, theirs = np.flatnonzero(query_groups == group), np.flatnonzero(row_groups == group)
        excluded = None
        if exclude is not None:
            position = np.full(len(rows), -1, dtype=np.int64)
            position[theirs] = np.arange(len(theirs))
            excluded = np.where(exclude[mine] >= 0, position[np.maximum(exclude[mine], 0)], -1)
        distance[mine] = nearest(queries[mine], rows[theirs], excluded)[0]
    return distance
