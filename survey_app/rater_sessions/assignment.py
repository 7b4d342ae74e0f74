"""Assignment: who a rater is (token, platform identity), which items their session holds (balanced, least-filled,
seeded order) and which lineup photos each lineup trial shows."""

from __future__ import annotations

import base64
import hmac
import random
import secrets
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import bindparam, func, insert, or_, select, update
from sqlalchemy.orm import Session

from survey_app.audio_check import AUDIO_CHECK_TRIALS
from survey_app.models import (
    Image,
    Item,
    ItemKind,
    Platform,
    Rater,
    Study,
    StudyKind,
    Trial,
    utc_now,
)
from survey_app.rater_sessions.queries import IMAGES, RATERS, TRIALS, hash_token

COUNT_LINEUP_EXPOSURES = (
    update(IMAGES)
    .where(IMAGES.c.id == bindparam("image_id"))
    .values(lineup_exposures=IMAGES.c.lineup_exposures + bindparam("shown"))
)


class DuplicateParticipant(Exception):
    """This platform participant already has a session in this study."""


@dataclass(frozen=True)
class PlatformIdentity:
    platform: Platform
    participant_id: str | None = None
    study_id: str | None = None
    session_id: str | None = None


def rater_token(secret_key: bytes, start_nonce: str) -> str:
    """The rater's bearer token for the consent form's one-time `start_nonce`: HMAC(key, nonce), so that the same
    form sent twice (a double click on Start, a retry) gives the same rater, without storing the nonce."""
    digest = hmac.digest(secret_key, b"survey-app rater token:" + start_nonce.encode(), "sha256")
    return base64.urlsafe_b64encode(digest).decode().rstrip("=")


def start_session(
    db: Session, study: Study, identity: PlatformIdentity, user_agent: str, viewport: str | None, token: str
) -> bool:
    """Creates the rater of bearer `token` (stored hashed) and their trials; False when that rater exists already
    (the same consent form sent again), True when created.

    The study row is locked (FOR UPDATE on PostgreSQL; SQLite transactions here all hold the write lock), so two
    raters starting at once never both see the same fill counts, and the same form sent twice at once creates one
    rater. Raters who start together (a study's link posted on a platform) wait for each other here while holding
    server threads, so on PostgreSQL the work that needs no lock (the study's items) is done before it, and the rater
    and trials are written by Core INSERTs.
    """
    seed = secrets.randbelow(2**31)
    items = _study_items(db, study)
    db.execute(select(Study.id).where(Study.id == study.id).with_for_update())
    if db.scalar(select(Rater.id).where(Rater.token_hash == hash_token(token))) is not None:
        return False
    if identity.participant_id and db.scalar(
        select(Rater.id).where(
            Rater.study_id == study.id,
            Rater.platform == identity.platform,
            Rater.platform_pid == identity.participant_id,
        )
    ):
        raise DuplicateParticipant(identity.participant_id)
    rng = random.Random(seed)
    if study.kind == StudyKind.FACES:
        lineups, pairs = _session_items(items, _fill_counts(db, study), study, rng)
        lineup_plan = _lineup_displays(db, study, lineups, rng) if lineups else []
        plan = lineup_plan + [(item, [item.reference_image_id, item.probe_image_id]) for item in pairs]
        first_block = len(lineup_plan)
        exposures: dict[int, int | None] = {}
    else:
        checks, trials = _kind_session_items(items, _fill_counts(db, study), study, rng)
        plan = [(item, _kind_display(item, rng)) for item in checks + trials]
        first_block = len(checks)
        exposures = _exposures(trials, (study.design or {}).get("exposures_ms") or [None], rng)
    rater_id = db.scalar(
        insert(RATERS)
        .values(
            public_id=secrets.token_hex(8),
            study_id=study.id,
            token_hash=hash_token(token),
            seed=seed,
            platform=identity.platform,
            platform_pid=identity.participant_id,
            platform_study_id=identity.study_id,
            platform_session_id=identity.session_id,
            consent_version=study.consent_version,
            completion_code=secrets.token_hex(5).upper(),
            user_agent=user_agent[:300],
            viewport=viewport,
            trials_total=len(plan),
            lineup_trials=first_block,
        )
        .returning(RATERS.c.id)
    )
    trials = [
        {
            "id": secrets.token_hex(16),
            "rater_id": rater_id,
            "item_id": item.id,
            "position": position,
            "display_image_ids": display,
            "exposure_ms": exposures.get(item.id),
        }
        for position, (item, display) in enumerate(plan)
    ]
    db.execute(insert(TRIALS), trials)  # one executemany, not one ORM object per trial
    return True


def _study_items(db: Session, study: Study) -> list[Item]:
    """The study's items in a stable order (items never change once the study exists)."""
    return list(db.scalars(select(Item).where(Item.study_id == study.id).order_by(Item.id)))


def _session_items(
    items: Sequence[Item], fill: Mapping[int, int], study: Study, rng: random.Random
) -> tuple[list[Item], list[Item]]:
    """The lineup block (first, so that no face of the pair block has been seen) and the pair block, each shuffled:
    the least-filled test pairs, the attention check, one control of each kind, and as many lineups as test pairs
    (least-filled; their generated faces are not the test pairs')."""
    by_kind: dict[ItemKind, list[Item]] = {}
    for item in items:
        by_kind.setdefault(item.kind, []).append(item)
    tests = pick_least_filled(by_kind.get(ItemKind.TEST, []), fill, study.test_trials_per_session, rng)
    pair_block = tests + by_kind.get(ItemKind.ATTENTION, [])
    for control_kind in (ItemKind.CONTROL_SAME, ItemKind.CONTROL_DIFFERENT):
        pair_block += pick_least_filled(by_kind.get(control_kind, []), fill, 1, rng)
    lineup_block = pick_least_filled(by_kind.get(ItemKind.LINEUP, []), fill, len(tests), rng)
    rng.shuffle(pair_block)
    rng.shuffle(lineup_block)
    return lineup_block, pair_block


def _kind_session_items(
    items: Sequence[Item], fill: Mapping[int, int], study: Study, rng: random.Random
) -> tuple[list[Item], list[Item]]:
    """An audio study's audio check (first: AUDIO_CHECK_TRIALS clips of different tone counts, in random order) and
    its trials, shuffled: `test_trials_per_session` least-filled items, half of each arm for matching (a clip heard
    once per session: the generated arm's clips differ from the real arm's) and hype, any for pairwise."""
    by_kind_arm: dict[tuple[ItemKind, str | None], list[Item]] = {}
    for item in items:
        by_kind_arm.setdefault((item.kind, item.arm), []).append(item)
    check_items = by_kind_arm.get((ItemKind.AUDIO_CHECK, None), [])
    checks = rng.sample(check_items, min(AUDIO_CHECK_TRIALS, len(check_items)))
    wanted = study.test_trials_per_session
    if study.kind == StudyKind.PAIRWISE:
        trials = pick_least_filled(by_kind_arm.get((ItemKind.PAIRWISE, study.design["prompt"]), []), fill, wanted, rng)
    else:
        kind = ItemKind.MATCHING if study.kind == StudyKind.MATCHING else ItemKind.HYPE
        first = pick_least_filled(by_kind_arm.get((kind, "real"), []), fill, wanted - wanted // 2, rng)
        heard = {item.clip for item in first if kind == ItemKind.MATCHING}
        others = [item for item in by_kind_arm.get((kind, "generated"), []) if item.clip not in heard]
        trials = first + pick_least_filled(others, fill, wanted // 2, rng)
    rng.shuffle(trials)
    return checks, trials


def _exposures(trials: Sequence[Item], conditions: Sequence[int | None], rng: random.Random) -> dict[int, int | None]:
    """Each trial's exposure condition (hype: None is untimed), balanced within each arm: the arm's trials take the
    conditions in turn, from a random start."""
    exposures: dict[int, int | None] = {}
    for arm in sorted({item.arm or "" for item in trials}):
        offset = rng.randrange(len(conditions))
        arm_trials = [item for item in trials if (item.arm or "") == arm]
        for position, item in enumerate(arm_trials):
            exposures[item.id] = conditions[(position + offset) % len(conditions)]
    return exposures


def _kind_display(item: Item, rng: random.Random) -> list[str]:
    """The images of an audio-kind trial in on-screen order: the reference photo first when the item has one (a
    pairwise study prompted by a photo), then its faces in random order (or its one image)."""
    options = list(item.option_image_ids or ([item.probe_image_id] if item.probe_image_id else []))
    rng.shuffle(options)
    return ([item.reference_image_id] if item.reference_image_id else []) + options


def _fill_counts(db: Session, study: Study) -> dict[int, int]:
    """Trials per item in completed sessions and in sessions still young enough to be completed."""
    cutoff = utc_now() - timedelta(minutes=study.session_max_age_minutes)
    rows = db.execute(
        select(Trial.item_id, func.count())
        .join(Rater, Rater.id == Trial.rater_id)
        .where(Rater.study_id == study.id, or_(Rater.completed_at.is_not(None), Rater.consented_at >= cutoff))
        .group_by(Trial.item_id)
    )
    return dict(rows.all())


def pick_least_filled(items: Sequence[Item], fill: Mapping[int, int], count: int, rng: random.Random) -> list[Item]:
    """The `count` least-filled items, random among ties; among equally filled items, unseen identities first."""
    tie_breaks = {item.id: rng.random() for item in items}
    remaining = sorted(items, key=lambda item: (fill.get(item.id, 0), tie_breaks[item.id]))
    chosen: list[Item] = []
    identities: set[str] = set()
    while remaining and len(chosen) < count:
        lowest = fill.get(remaining[0].id, 0)
        level = [item for item in remaining if fill.get(item.id, 0) == lowest]
        pick = next((item for item in level if item.identity not in identities), level[0])
        chosen.append(pick)
        identities.add(pick.identity)
        remaining.remove(pick)
    return chosen


@dataclass
class _PoolPhoto:
    id: str
    exposures: int  # over all raters so far
    shown: int = 0  # in this session


def _lineup_displays(
    db: Session, study: Study, lineups: Sequence[Item], rng: random.Random
) -> list[tuple[Item, list[str]]]:
    """Each lineup's display: its generated face, then one pool photo of its identity (the target) and one of each
    of `lineup_size - 1` other identities (the foils), in random order.

    Target and foil photos are drawn by one rule, so that nothing but the faces tells them apart: from the identity's
    pool, the photo least shown in this session (a rater meets no photo twice while the pool lasts), then least
    shown to all raters (exposures stay balanced), random among ties. Foil identities are those of the target's
    group (when it has enough) least used as foils in this session, random among ties. The exposures are counted on
    the photos."""
    pools: dict[str, list[_PoolPhoto]] = {}
    groups: dict[str, str] = {}
    for image_id, identity, group, exposures in db.execute(
        select(Image.id, Image.identity, Image.identity_group, Image.lineup_exposures)
        .where(Image.study_id == study.id, Image.lineup_pool)
        .order_by(Image.id)
    ):
        pools.setdefault(identity, []).append(_PoolPhoto(image_id, exposures))
        groups[identity] = group
    foil_uses: Counter[str] = Counter()
    displays = []
    for item in lineups:
        others = [identity for identity in pools if identity != item.identity]
        group = groups.get(item.identity)
        same_group = [identity for identity in others if group and groups[identity] == group]
        candidates = same_group if len(same_group) >= study.lineup_size - 1 else others
        ranked = sorted(candidates, key=lambda identity: (foil_uses[identity], rng.random()))
        foils = ranked[: study.lineup_size - 1]
        foil_uses.update(foils)
        options = [_draw_photo(pools[identity], rng) for identity in (item.identity, *foils)]
        rng.shuffle(options)
        displays.append((item, [item.probe_image_id, *options]))
    shown = [{"image_id": photo.id, "shown": photo.shown} for pool in pools.values() for photo in pool if photo.shown]
    if shown:
        db.execute(COUNT_LINEUP_EXPOSURES, shown)
    return displays


def _draw_photo(pool: list[_PoolPhoto], rng: random.Random) -> str:
    photo = min(pool, key=lambda candidate: (candidate.shown, candidate.exposures, rng.random()))
    photo.shown += 1
    photo.exposures += 1
    return photo.id
