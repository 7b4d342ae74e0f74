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


class Question(enum.StrEnum):
    QUALITY = "quality"
    RECOGNITION = "recognition"
    LINEUP = "lineup"


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


class Item(Base):
    """One stimulus of the study, shown to several raters (a trial is one showing to one rater)."""

    __tablename__ = "items"

    id: Mapped[int] = mapped_column(primary_key=True)
    study_id: Mapped[int] = mapped_column(ForeignKey("studies.id", ondelete="CASCADE"), index=True)
    kind: Mapped[ItemKind] = mapped_column(Enum(ItemKind, native_enum=False, length=32))
    identity: Mapped[str] = mapped_column(String(200))
    split: Mapped[str] = mapped_column(String(64))
    reference_image_id: Mapped[str | None] = mapped_column(ForeignKey("images.id"), nullable=True)
    probe_image_id: Mapped[str] = mapped_column(ForeignKey("images.id"))
    expected_quality: Mapped[int | None] = mapped_column(Integer, nullable=True)  # attention items only

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
