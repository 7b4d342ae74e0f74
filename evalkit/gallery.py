"""The gallery that retrieval and forced matching rank a generated face against: real faces of N identities.

Identities of one evaluated split: every identity of the data with real faces for it (its real training faces, else
the split's own real faces), plus every identity of the gallery manifest (``--gallery``; by default the 8 GRID speakers
embedded under ``evalkit/eval_data/grid-samples``), a name in both being one person. Each identity is represented by
the same number M of faces (``RunOptions.gallery_faces``, lowered to the smallest identity's count), drawn at random
(seeded by the run's seed, the split and the identity), so that no identity wins by having more faces. A query never
sees its own clip's real face in the gallery (leave-one-out): that photo is replaced by the identity's next drawn face
(an identity of the data keeps one spare face for this).

The identity score of a query face q for identity X, from its M gallery faces g_1..g_M (cosine of feature rows):
``mean``: (1/M) sum_i cos(q, g_i) (SF2F's similarity to the identity's faces); ``best``: max_i cos(q, g_i)
(nearest face). Genders, where the manifests give them (``gender`` column), select forced-matching impostors.

The default gallery is **out of domain** for in-the-wild data such as the embedded YouTube set: GRID's faces are
studio recordings (frontal, even light, one plain background, one camera), so its distractors are easier to reject
than faces of the data's own domain, and recall@K and 1:N overstate what an in-domain gallery would give. The gallery's
``domain`` (in every retrieval and forced-matching row) and a run warning say so; ``--gallery MANIFEST`` with real faces
of the data's domain (any manifest: ``identity,face`` columns, optional ``gender``; audio is not read) removes it.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from evalkit.errors import EvalError
from evalkit.evalset import load_real_faces
from evalkit.features import FeatureCache, make_extractor
from evalkit.metrics import MetricContext
from evalkit.options import EMBEDDED_GALLERY, RunOptions
from generator.data.manifest import Manifest, file_sha256, read_manifest
from generator.errors import DataError

NO_FACE = -1  # pool index of a gallery face that is not in the data's real pool (a gallery-manifest face)


def unit_rows(rows: np.ndarray) -> np.ndarray:
    """Rows scaled to unit Euclidean norm (float64); an all-zero row stays zero."""
    rows = np.asarray(rows, np.float64)
    return rows / np.clip(np.linalg.norm(rows, axis=1, keepdims=True), 1e-12, None)


@dataclass(frozen=True)
class Gallery:
    """Gallery faces of N identities.

    ``features`` (F, d) float64 unit rows; ``owner`` (F,) the index in ``identities`` of each face's identity;
    ``pool_index`` (F,) each face's index in the evaluated data's real pool, or NO_FACE; per identity, faces are in
    draw order and at most ``per_identity`` + 1 are kept (the spare replaces a query's own face)."""

    identities: tuple[str, ...]
    genders: tuple[str, ...]
    features: np.ndarray
    owner: np.ndarray
    pool_index: np.ndarray
    per_identity: int
    external: tuple[str, ...]
    source: str
    domain: str = ""

    def __len__(self) -> int:
        return len(self.identities)

    def index(self, names: np.ndarray) -> np.ndarray:
        """Positions in ``identities`` of identity names (all must be in the gallery)."""
        lookup = {name: k for k, name in enumerate(self.identities)}
        return np.array([lookup[name] for name in np.asarray(names).tolist()], dtype=np.int64)

    def face_columns(self, identity: int) -> np.ndarray:
        """Columns (into ``features``) of the identity's first ``per_identity`` faces."""
        return np.flatnonzero(self.owner == identity)[:self.per_identity]

    def used_faces(self, identity: int, paired: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Columns of the identity's drawn faces and a (n, columns) mask of those that represent it for each query:
        the first ``per_identity`` faces other than the query's own real face (``paired``: pool index, or NO_FACE)."""
        columns = np.flatnonzero(self.owner == identity)
        own = self.pool_index[columns]
        keep = (own[None, :] == NO_FACE) | (own[None, :] != np.asarray(paired)[:, None])
        return columns, keep & (np.cumsum(keep, axis=1) <= self.per_identity)

    def identity_scores(self, queries: np.ndarray, paired: np.ndarray, mode: str) -> np.ndarray:
        """(n, N) float64 identity scores of query feature rows (n, d): ``mode`` ``mean`` or ``best`` cosine over
        each identity's faces, leave-one-out for the query's own real face (``paired``, pool indices)."""
        cosines = unit_rows(queries) @ self.features.T
        scores = np.empty((len(cosines), len(self.identities)))
        for x in range(len(self.identities)):
            columns, keep = self.used_faces(x, paired)
            block = cosines[:, columns]
            if mode == "best":
                scores[:, x] = np.where(keep, block, -np.inf).max(axis=1)
            else:
                scores[:, x] = np.where(keep, block, 0.0).sum(axis=1) / keep.sum(axis=1)
        return scores

    def describe(self) -> dict:
        return {"identities": len(self.identities), "faces_per_identity": self.per_identity,
                "distractors": list(self.external), "source": self.source, "domain": self.domain,
                "genders": {name: gender or "unknown"
                            for name, gender in zip(self.identities, self.genders, strict=True)}}


DEFAULT_GALLERY_DOMAIN = ("out of domain: the default gallery's distractors are GRID studio faces (frontal, even "
                          "light, plain background), easier to reject than faces of in-the-wild data; recall@K and 1:N "
                          "overstate what an in-domain gallery gives (pass --gallery MANIFEST with faces of the data's "
                          "domain)")
USER_GALLERY_DOMAIN = "the --gallery manifest's faces (their domain is as chosen by the user)"


def gallery_domain(options: RunOptions) -> str:
    """What the run record says of the gallery's domain: the default gallery's is stated (GRID studio faces) unless
    the evaluated data are that gallery's own manifest; a user's gallery is described as theirs."""
    default = Path(options.gallery).resolve() == EMBEDDED_GALLERY.resolve()
    if default and Path(options.data).resolve() != EMBEDDED_GALLERY.resolve():
        return DEFAULT_GALLERY_DOMAIN
    return "in domain: the gallery is the evaluated data's own manifest" if default else USER_GALLERY_DOMAIN


def _read_gallery_manifest(ctx: MetricContext) -> Manifest:
    path = ctx.options.gallery
    try:
        manifest = read_manifest(path, check_files=False)
    except DataError as exc:
        raise EvalError(f"--gallery: {exc}") from None
    for pair in manifest.pairs:
        if not pair.face.is_file():
            raise EvalError(f"--gallery {manifest.path}: face file not found: {pair.face}")
    return manifest


def gallery_content_hash(path: Path) -> str:
    """SHA-256 over a gallery manifest's rows (identity, gender, face bytes): what the gallery's figures depend on
    (its audio is not read); a gallery that cannot be read hashes as its error message."""
    digest = hashlib.sha256()
    try:
        for pair in read_manifest(path, check_files=False).pairs:
            digest.update(f"{pair.identity}\0{pair.gender}\0{pair.face_order}\0".encode())
            digest.update(file_sha256(pair.face).encode())
    except (DataError, OSError) as exc:
        digest.update(str(exc).encode())
    return digest.hexdigest()


def data_genders(ctx: MetricContext) -> dict[str, str]:
    """{identity: gender} of the evaluated data's manifest (``--data``), where it has a ``gender`` column."""
    key = "data_genders"
    if key not in ctx.memo:
        try:
            ctx.memo[key] = read_manifest(ctx.options.data, check_files=False).genders
        except DataError:
            ctx.memo[key] = {}  # the data were read when the run started; a stand-in set may have no manifest
    return ctx.memo[key]


def _external_faces(ctx: MetricContext, extractor: str, key: str) -> tuple[np.ndarray, np.ndarray, dict[str, str]]:
    """Features, identities and genders of the gallery manifest's distinct faces, resized as the data's real faces."""
    memo_key = ("gallery_faces", extractor, key)
    if memo_key not in ctx.memo:
        manifest = _read_gallery_manifest(ctx)
        size = ctx.evalset.real.images.shape[1]
        pool = load_real_faces(manifest, tuple(manifest.splits), size).pool
        cache = FeatureCache(ctx.options.cache_dir)
        features = cache.features(make_extractor(extractor, ctx.options), pool.images)[key]
        ctx.memo[memo_key] = (unit_rows(features), pool.identities, manifest.genders)
    return ctx.memo[memo_key]


def _data_candidates(ctx: MetricContext, split: str) -> dict[str, np.ndarray]:
    """Pool indices of each data identity's candidate gallery faces: its real training faces, else (identities
    without any, e.g. unseen identities) the split's real faces of it."""
    ev = ctx.evalset
    pool_identities = ev.real.identities
    candidates: dict[str, np.ndarray] = {}
    for identity in sorted(set(pool_identities[ev.head_train].tolist())):
        candidates[identity] = ev.head_train[pool_identities[ev.head_train] == identity]
    split_faces = ev.real_index[split]
    for identity in sorted(set(ev.generated.identities[ev.generated_index[split]].tolist()) - set(candidates)):
        candidates[identity] = split_faces[pool_identities[split_faces] == identity]
    return candidates


def split_gallery(ctx: MetricContext, split: str, extractor: str = "dlib", key: str = "descriptor") -> Gallery:
    """The gallery of one evaluated split (built once per run, split and extractor)."""
    memo_key = ("gallery", split, extractor, key)
    if memo_key in ctx.memo:
        return ctx.memo[memo_key]
    external_features, external_identities, external_genders = _external_faces(ctx, extractor, key)
    _, real = ctx.features(extractor)
    real_features = unit_rows(real[key])
    candidates = _data_candidates(ctx, split)
    names = sorted(set(candidates) | set(external_identities.tolist()))
    # an identity with data faces keeps one spare, which stands in for a query's own face
    counts = {n: len(candidates.get(n, ())) + int((external_identities == n).sum()) - (n in candidates)
              for n in names}
    wanted = ctx.options.gallery_faces
    per_identity = min(wanted, *counts.values())
    if per_identity < 1:
        raise EvalError(f"gallery of {split}: {sorted(n for n, c in counts.items() if c < 1)} have too few real faces "
                        "(an identity of the data needs at least 2)")
    if per_identity < wanted:
        short = sorted(n for n, c in counts.items() if c < wanted)
        ctx.warn(f"gallery of {split}: {short} have fewer than {wanted} faces; every identity is represented by "
                 f"{per_identity}")
    genders = {**external_genders, **data_genders(ctx)}
    clash = {n for n in names if n in external_genders and n in data_genders(ctx)
             and external_genders[n] != data_genders(ctx)[n]}
    if clash:
        raise EvalError(f"identities {sorted(clash)} have one gender in --data and another in --gallery")
    rows, owner, pool_index = [], [], []
    for x, name in enumerate(names):
        data_faces = candidates.get(name, np.zeros(0, dtype=np.int64))
        external = np.flatnonzero(external_identities == name)
        pool = np.concatenate([data_faces, np.full(len(external), NO_FACE)])
        features = np.concatenate([real_features[data_faces], external_features[external]])
        drawn = ctx.rng("gallery", split, name).permutation(len(pool))[:per_identity + 1]
        rows.append(features[drawn])
        owner += [x] * len(drawn)
        pool_index.append(pool[drawn])
    gallery = Gallery(
        identities=tuple(names), genders=tuple(genders.get(n, "") for n in names), features=np.concatenate(rows),
        owner=np.array(owner, dtype=np.int64), pool_index=np.concatenate(pool_index).astype(np.int64),
        per_identity=per_identity, external=tuple(sorted(set(external_identities.tolist()) - set(candidates))),
        source=str(ctx.options.gallery), domain=gallery_domain(ctx.options))
    if gallery.domain == DEFAULT_GALLERY_DOMAIN:
        ctx.warn(f"retrieval and forced matching: the gallery is {DEFAULT_GALLERY_DOMAIN}")
    ctx.memo[memo_key] = gallery
    return gallery
