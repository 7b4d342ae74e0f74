"""initial schema

Revision ID: 0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "admins",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("username", sa.String(length=64), nullable=False),
        sa.Column("password_hash", sa.String(length=256), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("username"),
    )
    op.create_table(
        "studies",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("slug", sa.String(length=64), nullable=False),
        sa.Column("title", sa.String(length=200), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("consent_version", sa.String(length=32), nullable=False),
        sa.Column("consent_text", sa.Text(), nullable=False),
        sa.Column("seed", sa.Integer(), nullable=False),
        sa.Column("test_trials_per_session", sa.Integer(), nullable=False),
        sa.Column("lineup_size", sa.Integer(), nullable=False),
        sa.Column("completion_code", sa.String(length=32), nullable=False),
        sa.Column("session_max_age_minutes", sa.Integer(), nullable=False),
        sa.Column("source", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("slug"),
    )
    op.create_table(
        "images",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("study_id", sa.Integer(), nullable=False),
        sa.Column("is_generated", sa.Boolean(), nullable=False),
        sa.Column("identity", sa.String(length=200), nullable=False),
        sa.Column("split", sa.String(length=64), nullable=False),
        sa.Column("source_path", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(["study_id"], ["studies.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("images", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_images_study_id"), ["study_id"], unique=False)

    op.create_table(
        "raters",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("public_id", sa.String(length=32), nullable=False),
        sa.Column("study_id", sa.Integer(), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("seed", sa.Integer(), nullable=False),
        sa.Column(
            "platform",
            sa.Enum("DIRECT", "PROLIFIC", "MTURK", name="platform", native_enum=False, length=16),
            nullable=False,
        ),
        sa.Column("platform_pid", sa.String(length=64), nullable=True),
        sa.Column("platform_study_id", sa.String(length=64), nullable=True),
        sa.Column("platform_session_id", sa.String(length=64), nullable=True),
        sa.Column("consent_version", sa.String(length=32), nullable=False),
        sa.Column("consented_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("completed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("completion_code", sa.String(length=32), nullable=False),
        sa.Column("user_agent", sa.String(length=300), nullable=False),
        sa.Column("viewport", sa.String(length=32), nullable=True),
        sa.ForeignKeyConstraint(["study_id"], ["studies.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("public_id"),
        sa.UniqueConstraint("study_id", "platform", "platform_pid", name="uq_rater_platform_pid"),
        sa.UniqueConstraint("token_hash"),
    )
    with op.batch_alter_table("raters", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_raters_study_id"), ["study_id"], unique=False)

    op.create_table(
        "items",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("study_id", sa.Integer(), nullable=False),
        sa.Column(
            "kind",
            sa.Enum(
                "TEST",
                "CONTROL_SAME",
                "CONTROL_DIFFERENT",
                "ATTENTION",
                "LINEUP",
                "EXAMPLE",
                name="itemkind",
                native_enum=False,
                length=32,
            ),
            nullable=False,
        ),
        sa.Column("identity", sa.String(length=200), nullable=False),
        sa.Column("split", sa.String(length=64), nullable=False),
        sa.Column("reference_image_id", sa.String(length=32), nullable=True),
        sa.Column("probe_image_id", sa.String(length=32), nullable=False),
        sa.Column("expected_quality", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(
            ["probe_image_id"],
            ["images.id"],
        ),
        sa.ForeignKeyConstraint(
            ["reference_image_id"],
            ["images.id"],
        ),
        sa.ForeignKeyConstraint(["study_id"], ["studies.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("items", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_items_study_id"), ["study_id"], unique=False)

    op.create_table(
        "lineup_options",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("item_id", sa.Integer(), nullable=False),
        sa.Column("image_id", sa.String(length=32), nullable=False),
        sa.Column("is_target", sa.Boolean(), nullable=False),
        sa.ForeignKeyConstraint(
            ["image_id"],
            ["images.id"],
        ),
        sa.ForeignKeyConstraint(["item_id"], ["items.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("lineup_options", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_lineup_options_item_id"), ["item_id"], unique=False)

    op.create_table(
        "trials",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("rater_id", sa.Integer(), nullable=False),
        sa.Column("item_id", sa.Integer(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("display_image_ids", sa.JSON(), nullable=False),
        sa.Column("shown_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["item_id"],
            ["items.id"],
        ),
        sa.ForeignKeyConstraint(["rater_id"], ["raters.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("rater_id", "item_id", name="uq_trial_item"),
        sa.UniqueConstraint("rater_id", "position", name="uq_trial_position"),
    )
    with op.batch_alter_table("trials", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_trials_item_id"), ["item_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_trials_rater_id"), ["rater_id"], unique=False)

    op.create_table(
        "answers",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("trial_id", sa.String(length=32), nullable=False),
        sa.Column("rater_id", sa.Integer(), nullable=False),
        sa.Column(
            "question",
            sa.Enum("QUALITY", "RECOGNITION", "LINEUP", name="question", native_enum=False, length=16),
            nullable=False,
        ),
        sa.Column("value", sa.String(length=32), nullable=False),
        sa.Column("client_rt_ms", sa.Integer(), nullable=True),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["rater_id"], ["raters.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["trial_id"], ["trials.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("trial_id", "question", name="uq_answer_trial_question"),
    )
    with op.batch_alter_table("answers", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_answers_rater_id"), ["rater_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_answers_trial_id"), ["trial_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("answers", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_answers_trial_id"))
        batch_op.drop_index(batch_op.f("ix_answers_rater_id"))

    op.drop_table("answers")
    with op.batch_alter_table("trials", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_trials_rater_id"))
        batch_op.drop_index(batch_op.f("ix_trials_item_id"))

    op.drop_table("trials")
    with op.batch_alter_table("lineup_options", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_lineup_options_item_id"))

    op.drop_table("lineup_options")
    with op.batch_alter_table("items", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_items_study_id"))

    op.drop_table("items")
    with op.batch_alter_table("raters", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_raters_study_id"))

    op.drop_table("raters")
    with op.batch_alter_table("images", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_images_study_id"))

    op.drop_table("images")
    op.drop_table("studies")
    op.drop_table("admins")
