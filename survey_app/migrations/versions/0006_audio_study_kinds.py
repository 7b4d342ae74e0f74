"""audio study kinds: voice->face matching, HYPE real-vs-generated, pairwise comparison of runs; audio check

Revision ID: 0006
Revises: 0005

- studies: `kind` (faces for every older study) and `design` (the kind's design as built).
- audio_clips: voice clips and audio-check clips, stored as WAV under random ids, with their duration.
- images: `system`, the run a generated face comes from (pairwise studies).
- items: `probe_image_id` may be empty (audio checks, matching and pairwise items show several faces); `arm`, `clip`, `audio_id`, `option_image_ids`, `expected_answer`.
- trials: `play_started_at`, `played_at`, `plays` (the server's play-to-end rule), `exposure_ms` (timed hype trials).
- raters: `ended_reason` (a session ended early, e.g. by a failed audio check).
- play_events: each play/ended event a page reported, with the server's verdict.
Migrate with the server stopped.
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("studies", schema=None) as batch_op:
        batch_op.add_column(sa.Column("kind", sa.Enum("FACES", "MATCHING", "HYPE", "PAIRWISE", name="studykind",
                                                      native_enum=False, length=16), server_default="FACES",
                                      nullable=False))
        batch_op.add_column(sa.Column("design", sa.JSON(), nullable=True))
    op.create_table(
        "audio_clips",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("study_id", sa.Integer(), nullable=False),
        sa.Column("identity", sa.String(length=200), nullable=False),
        sa.Column("clip", sa.String(length=300), nullable=False),
        sa.Column("duration_s", sa.Float(), nullable=False),
        sa.Column("source_path", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(["study_id"], ["studies.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(op.f("ix_audio_clips_study_id"), "audio_clips", ["study_id"], unique=False)
    with op.batch_alter_table("images", schema=None) as batch_op:
        batch_op.add_column(sa.Column("system", sa.String(length=200), server_default="", nullable=False))
    with op.batch_alter_table("items", schema=None) as batch_op:
        batch_op.add_column(sa.Column("arm", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("clip", sa.String(length=300), nullable=True))
        batch_op.add_column(sa.Column("audio_id", sa.String(length=32), nullable=True))
        batch_op.add_column(sa.Column("option_image_ids", sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column("expected_answer", sa.String(length=32), nullable=True))
        batch_op.alter_column("probe_image_id", existing_type=sa.String(length=32), nullable=True)
        batch_op.create_foreign_key("fk_items_audio_id_audio_clips", "audio_clips", ["audio_id"], ["id"])
    with op.batch_alter_table("trials", schema=None) as batch_op:
        batch_op.add_column(sa.Column("play_started_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("played_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("plays", sa.Integer(), server_default="0", nullable=False))
        batch_op.add_column(sa.Column("exposure_ms", sa.Integer(), nullable=True))
    with op.batch_alter_table("raters", schema=None) as batch_op:
        batch_op.add_column(sa.Column("ended_reason", sa.String(length=32), nullable=True))
    op.create_table(
        "play_events",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("trial_id", sa.String(length=32), nullable=False),
        sa.Column("event", sa.String(length=16), nullable=False),
        sa.Column("client_duration_ms", sa.Integer(), nullable=True),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("complete", sa.Boolean(), nullable=True),
        sa.ForeignKeyConstraint(["trial_id"], ["trials.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(op.f("ix_play_events_trial_id"), "play_events", ["trial_id"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_play_events_trial_id"), table_name="play_events")
    op.drop_table("play_events")
    with op.batch_alter_table("raters", schema=None) as batch_op:
        batch_op.drop_column("ended_reason")
    with op.batch_alter_table("trials", schema=None) as batch_op:
        batch_op.drop_column("exposure_ms")
        batch_op.drop_column("plays")
        batch_op.drop_column("played_at")
        batch_op.drop_column("play_started_at")
    with op.batch_alter_table("items", schema=None) as batch_op:
        batch_op.drop_constraint("fk_items_audio_id_audio_clips", type_="foreignkey")
        batch_op.alter_column("probe_image_id", existing_type=sa.String(length=32), nullable=False)
        batch_op.drop_column("expected_answer")
        batch_op.drop_column("option_image_ids")
        batch_op.drop_column("audio_id")
        batch_op.drop_column("clip")
        batch_op.drop_column("arm")
    with op.batch_alter_table("images", schema=None) as batch_op:
        batch_op.drop_column("system")
    op.drop_index(op.f("ix_audio_clips_study_id"), table_name="audio_clips")
    op.drop_table("audio_clips")
    with op.batch_alter_table("studies", schema=None) as batch_op:
        batch_op.drop_column("design")
        batch_op.drop_column("kind")
