"""SQLAlchemy 2.0 models of a study, its stimuli, its raters and their answers.

Server-side only facts (which image is real, which identity it shows, the expected answer of a control) live
here and are never put into a URL or a page: raters see trials by opaque id and images by slot number.
"""

from __future__ import annotations

import enum
from datetime import UTC, datetime

from sqlalchemy import (
    JSON,
    Boolean,
    DateTime,
    Enum,
    Float,
    ForeignKey,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy import false as sa_false
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship


def utc_now() -> datetime:
    return datetime.now(UTC)


def as_utc(moment: datetime) -> datetime:
    """SQLite returns naive datetimes for timezone-aware columns; every stored time is UTC."""
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


class Base(DeclarativeBase):
    pass


class ItemKind(enum.StrEnum):
    TEST = "test"  # real baseline vs generated face: the study's measurement
    CONTROL_SAME = "control_same"  # real baseline vs another real photo of the same person
    CONTROL_DIFFERENT = "control_different"  # real baseline vs a real photo of a different person
    ATTENTION = "attention"  # instructed-response item: the question itself says which answer to give
    LINEUP = "lineup"  # generated face vs N real faces (target + foils): pick the person
    # Worked examples on the task instructions, never trials: a generated face beside its real photo, another photo
    # of the same person, and a photo of a different person (the lineup example combines them).
    EXAMPLE = "example"
    EXAMPLE_SAME = "example_same"
    EXAMPLE_DIFFERENT = "example_different"
    # Audio study kinds (survey_app.study_kinds). The audio check comes before any audio trial: counted tones.
    AUDIO_CHECK = "audio_check"
    MATCHING = "matching"  # a voice clip and N faces (arm real: true speaker + impostors; arm generated: faces
    # generated from this clip and from impostors' clips): pick the face of the voice
    HYPE = "hype"  # one image, real photo or generated face: "real or generated?" (arm: real | generated)
    PAIRWISE = "pairwise"  # two runs' faces of one clip, prompted by its voice or its real photo: which fits better


class Question(enum.StrEnum):
    QUALITY = "quality"
    RECOGNITION = "recognition"
    LINEUP = "lineup"
    AUDIO_CHECK = "audio_check"  # how many tones the clip held
    MATCHING = "matching"  # the chosen face's slot 1..N
    HYPE = "hype"  # real | generated
    PAIRWISE = "pairwise"  # 1 | 2 (the chosen face's slot) | tie


class StudyKind(enum.StrEnum):
    FACES = "faces"  # MOS + recognition pairs, controls, attention check, optional lineups (the original study)
    MATCHING = "matching"
    HYPE = "hype"
    PAIRWISE = "pairwise"


class Platform(enum.StrEnum):
    DIRECT = "direct"
    PROLIFIC = "prolific"
    MTURK = "mturk"


class Study(Base):
    __tablename__ = "studies"

    id: Mapped[int] = mapped_column(primary_key=True)
    slug: Mapped[str] = mapped_column(String(64), unique=True)
    title: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utc_now)
    consent_version: Mapped[str] = mapped_column(String(32))
    consent_text: Mapped[str] = mapped_column(Text)
    seed: Mapped[int] = mapped_column(Integer)
    test_trials_per_session: Mapped[int] = mapped_column(Integer)
    lineup_size: Mapped[int] = mapped_column(Integer)  # 0: no lineup task
    completion_code: Mapped[str] = mapped_column(String(32))
    session_max_age_minutes: Mapped[int] = mapped_column(Integer)
    source: Mapped[dict] = mapped_column(JSON)  # provenance: input folder, manifest digest, run metadata
    kind: Mapped[StudyKind] = mapped_column(
        Enum(StudyKind, native_enum=False, length=16), default=StudyKind.FACES, server_default="FACES"
    )
    # The kind's design as built (faces per matching trial, impostor rule, prompt, runs, exposures ...): its keys
    # are listed in survey_app.study_kinds; {} for a faces study.
    design: Mapped[dict | None] = mapped_column(JSON, nullable=True)

    items: Mapped[list[Item]] = relationship(back_populates="study", cascade="all, delete-orphan")


class Image(Base):
    __tablename__ = "images"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)  # random hex, also the stored file's stem
    study_id: Mapped[int] = mapped_column(ForeignKey("studies.id", ondelete="CASCADE"), index=True)
    is_generated: Mapped[bool] = mapped_column(Boolean)
    identity: Mapped[str] = mapped_column(String(200))
    split: Mapped[str] = mapped_column(String(64))
    identity_group: Mapped[str] = mapped_column(String(64), default="", server_default="")  # the manifest's group
    source_path: Mapped[str] = mapped_column(Text)  # path in the input folder, for the admin's export only
    # Real photos of the lineup pool (no pair trial or example shows them): drawn per lineup trial, least-shown first.
    lineup_pool: Mapped[bool] = mapped_column(Boolean, default=False, server_default=sa_false())
    # Lineup trials that showed this photo, over all raters.
    lineup_exposures: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    # The run (its name in the study's design) a generated face comes from, for a study over several runs.
    system: Mapped[str] = mapped_column(String(200), default="", server_default="")


class AudioClip(Base):
    """A voice clip (from a run's `audio` column) or an audio-check clip of counted tones, stored as 16-bit WAV under
    a random id: its name, container and metadata tell nothing."""

    __tablename__ = "audio_clips"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)  # random hex, also the stored file's stem
    study_id: Mapped[int] = mapped_column(ForeignKey("studies.id", ondelete="CASCADE"), index=True)
    identity: Mapped[str] = mapped_column(String(200))  # the speaker; "" for an audio-check clip
    clip: Mapped[str] = mapped_column(String(300))  # the run's clip id; "tones-N" for an audio-check clip
    duration_s: Mapped[float] = mapped_column(Float)  # from the stored file: the server's play-to-end rule uses it
    source_path: Mapped[str] = mapped_column(Text)  # path in the input folder, for the admin's export only


class Item(Base):
    """One stimulus of the study, shown to several raters (a trial is one showing to one rater)."""

    __tablename__ = "items"

    id: Mapped[int] = mapped_column(primary_key=True)
    study_id: Mapped[int] = mapped_column(ForeignKey("studies.id", ondelete="CASCADE"), index=True)
    kind: Mapped[ItemKind] = mapped_column(Enum(ItemKind, native_enum=False, length=32))
    identity: Mapped[str] = mapped_column(String(200))
    split: Mapped[str] = mapped_column(String(64))
    reference_image_id: Mapped[str | None] = mapped_column(ForeignKey("images.id"), nullable=True)
    # None for items that show no single image to judge (audio checks, matching and pairwise trials)
    probe_image_id: Mapped[str | None] = mapped_column(ForeignKey("images.id"), nullable=True)
    expected_quality: Mapped[int | None] = mapped_column(Integer, nullable=True)  # attention items only
    # The audio kinds' facts: the arm (matching: real | generated; hype: real | generated; pairwise: the prompt),
    # the run's clip id, the voice clip, the faces to choose from (display order is drawn per trial), the right
    # answer of an audio check (the number of tones).
    arm: Mapped[str | None] = mapped_column(String(64), nullable=True)
    clip: Mapped[str | None] = mapped_column(String(300), nullable=True)
    audio_id: Mapped[str | None] = mapped_column(ForeignKey("audio_clips.id"), nullable=True)
    option_image_ids: Mapped[list | None] = mapped_column(JSON, nullable=True)
    expected_answer: Mapped[str | None] = mapped_column(String(32), nullable=True)

    study: Mapped[Study] = relationship(back_populates="items")


class Rater(Base):
    """One rater's session in one study; the bearer token is stored only as its SHA-256 hash."""

    __tablename__ = "raters"
    __table_args__ = (UniqueConstraint("study_id", "platform", "platform_pid", name="uq_rater_platform_pid"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    public_id: Mapped[str] = mapped_column(String(32), unique=True)  # opaque id used in exports
    study_id: Mapped[int] = mapped_column(ForeignKey("studies.id", ondelete="CASCADE"), index=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    seed: Mapped[int] = mapped_column(Integer)
    platform: Mapped[Platform] = mapped_column(Enum(Platform, native_enum=False, length=16))
    platform_pid: Mapped[str | None] = mapped_column(String(64), nullable=True)
    platform_study_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    platform_session_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    consent_version: Mapped[str] = mapped_column(String(32))
    consented_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utc_now)
    completed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    # Trials are answered strictly in order, so trials_answered is also the position of the current trial.
    trials_answered: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    trials_total: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    # Lineup trials come first: positions 0 .. lineup_trials - 1; the pair trials follow (each block has its own
    # instructions page before its first trial).
    lineup_trials: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    # Every save updates it, under the row's lock: saves and the Next of one rater are serialized by the row
    # (survey_app.rater_sessions), and it tells when the rater was last active.
    last_answer_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    completion_code: Mapped[str] = mapped_column(String(32))
    user_agent: Mapped[str] = mapped_column(String(300))
    viewport: Mapped[str | None] = mapped_column(String(32), nullable=True)
    # Why the session ended before its last trial (e.g. "audio_check": the rater failed the audio check); None while
    # it runs or once completed.
    ended_reason: Mapped[str | None] = mapped_column(String(32), nullable=True)

    trials: Mapped[list[Trial]] = relationship(back_populates="rater", order_by="Trial.position")


class Trial(Base):
    __tablename__ = "trials"
    __table_args__ = (
        UniqueConstraint("rater_id", "position", name="uq_trial_position"),
        UniqueConstraint("rater_id", "item_id", name="uq_trial_item"),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True)  # random hex: the trial's URL id
    # No index of its own: uq_trial_position's index (rater_id first) serves lookups by rater.
    rater_id: Mapped[int] = mapped_column(ForeignKey("raters.id", ondelete="CASCADE"))
    item_id: Mapped[int] = mapped_column(ForeignKey("items.id"), index=True)
    position: Mapped[int] = mapped_column(Integer)
    display_image_ids: Mapped[list] = mapped_column(JSON)  # image ids in on-screen order (left to right)
    shown_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    # Audio trials (survey_app.playback): server time of the last "play" event, of the first play that reached its
    # end (answers are refused before it), and the number of plays.
    play_started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    played_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    plays: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    # Timed hype trials: how long the page showed the image (ms, after a 3-2-1 countdown, then a mask); None: untimed.
    exposure_ms: Mapped[int | None] = mapped_column(Integer, nullable=True)

    rater: Mapped[Rater] = relationship(back_populates="trials")
    item: Mapped[Item] = relationship()
    answers: Mapped[list[Answer]] = relationship(back_populates="trial", cascade="all, delete-orphan")


class Answer(Base):
    __tablename__ = "answers"
    __table_args__ = (UniqueConstraint("trial_id", "question", name="uq_answer_trial_question"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    # No index of its own: uq_answer_trial_question's index (trial_id first) serves lookups by trial.
    trial_id: Mapped[str] = mapped_column(ForeignKey("trials.id", ondelete="CASCADE"))
    rater_id: Mapped[int] = mapped_column(ForeignKey("raters.id", ondelete="CASCADE"), index=True)
    question: Mapped[Question] = mapped_column(Enum(Question, native_enum=False, length=16))
    value: Mapped[str] = mapped_column(String(32))
    client_rt_ms: Mapped[int | None] = mapped_column(Integer, nullable=True)  # of the value stored last
    received_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utc_now)  # of the value stored last
    # Times the rater changed this answer before pressing Next (the value is the last one given).
    changes: Mapped[int] = mapped_column(Integer, default=0, server_default="0")

    trial: Mapped[Trial] = relationship(back_populates="answers")


class PlayEvent(Base):
    """One play or ended event of a trial's clip as the page reported it, with the server's verdict."""

    __tablename__ = "play_events"

    id: Mapped[int] = mapped_column(primary_key=True)
    trial_id: Mapped[str] = mapped_column(ForeignKey("trials.id", ondelete="CASCADE"), index=True)
    event: Mapped[str] = mapped_column(String(16))  # play | ended
    client_duration_ms: Mapped[int | None] = mapped_column(Integer, nullable=True)  # the page's audio.duration
    received_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utc_now)
    # ended events: whether the server counted the play as complete (its own elapsed time >= duration - tolerance)
    complete: Mapped[bool | None] = mapped_column(Boolean, nullable=True)


class Admin(Base):
    __tablename__ = "admins"

    id: Mapped[int] = mapped_column(primary_key=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    password_hash: Mapped[str] = mapped_column(String(256))
    # Part of the id in the admin's session cookie (Flask-Login's "alternative token"): logging out or changing the
    # password increments it, which ends every earlier session of this admin.
    session_generation: Mapped[int] = mapped_column(Integer, default=0, server_default="0")

    # Flask-Login's user protocol.
    is_authenticated = True
    is_active = True
    is_anonymous = False

    def get_id(self) -> str:
        return f"{self.id}.{self.session_generation}"


class RateLimitCounter(Base):
    """A fixed-window counter of the login throttle (survey_app.throttle), shared by all server processes."""

    __tablename__ = "rate_limit_counters"

    key: Mapped[str] = mapped_column(String(255), primary_key=True)
    count: Mapped[int] = mapped_column(Integer)
    expires_at: Mapped[float] = mapped_column(Float)  # Unix time when the window ends
