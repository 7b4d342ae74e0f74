"""answers revisable until Next, lineup photos drawn per trial, revocable admin sessions, login throttle counters

Revision ID: 0005
Revises: 0004

- raters: `current_trial_answers` goes (a trial now ends when the rater presses Next, not when its last question is
  answered); `lineup_trials` (where the pair block starts, backfilled from the trials) and `last_answer_at` come.
- answers: `changes`, the times an answer was changed before Next.
- images: `lineup_exposures`, the lineup trials that showed a real photo (lineup photos are drawn per trial,
  least-shown first, from the photos marked `lineup_pool`: the old options), and `identity_group`, the manifest's
  matching key for foils (empty for older studies);
  `lineup_options` goes with the fixed foils it held. Lineups answered before the migration are
  still scored, by the identity of the chosen photo.
- admins: `session_generation`, part of the session cookie's user id; logout and password change increment it.
- rate_limit_counters: the login throttle's fixed windows, shared by every server process.
Migrate with the server stopped.
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

BACKFILL_LINEUP_TRIALS = """
UPDATE raters SET lineup_trials = (
    SELECT count(*) FROM trials JOIN items ON items.id = trials.item_id
    WHERE trials.rater_id = raters.id AND items.kind = 'LINEUP'
)
"""


def upgrade() -> None:
    with op.batch_alter_table("raters", schema=None) as batch_op:
        batch_op.drop_column("current_trial_answers")
        batch_op.add_column(sa.Column("lineup_trials", sa.Integer(), server_default="0", nullable=False))
        batch_op.add_column(sa.Column("last_answer_at", sa.DateTime(timezone=True), nullable=True))
    op.execute(BACKFILL_LINEUP_TRIALS)
    with op.batch_alter_table("answers", schema=None) as batch_op:
        batch_op.add_column(sa.Column("changes", sa.Integer(), server_default="0", nullable=False))
    with op.batch_alter_table("images", schema=None) as batch_op:
        batch_op.add_column(sa.Column("lineup_exposures", sa.Integer(), server_default="0", nullable=False))
        batch_op.add_column(sa.Column("identity_group", sa.String(length=64), server_default="", nullable=False))
        batch_op.add_column(sa.Column("lineup_pool", sa.Boolean(), server_default=sa.false(), nullable=False))
    op.execute("UPDATE images SET lineup_pool = true WHERE id IN (SELECT image_id FROM lineup_options)")
    with op.batch_alter_table("admins", schema=None) as batch_op:
        batch_op.add_column(sa.Column("session_generation", sa.Integer(), server_default="0", nullable=False))
    with op.batch_alter_table("lineup_options", schema=None) as batch_op:
        batch_op.drop_index("ix_lineup_options_item_id")
    op.drop_table("lineup_options")
    op.create_table(
        "rate_limit_counters",
        sa.Column("key", sa.String(length=255), nullable=False),
        sa.Column("count", sa.Integer(), nullable=False),
        sa.Column("expires_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("key"),
    )


def downgrade() -> None:
    """Lineup items created after the upgrade have no fixed options to restore: 0004 cannot show them again."""
    op.drop_table("rate_limit_counters")
    op.create_table(
        "lineup_options",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("item_id", sa.Integer(), nullable=False),
        sa.Column("image_id", sa.String(length=32), nullable=False),
        sa.Column("is_target", sa.Boolean(), nullable=False),
        sa.ForeignKeyConstraint(["image_id"], ["images.id"]),
        sa.ForeignKeyConstraint(["item_id"], ["items.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("lineup_options", schema=None) as batch_op:
        batch_op.create_index("ix_lineup_options_item_id", ["item_id"], unique=False)
    with op.batch_alter_table("admins", schema=None) as batch_op:
        batch_op.drop_column("session_generation")
    with op.batch_alter_table("images", schema=None) as batch_op:
        batch_op.drop_column("lineup_pool")
        batch_op.drop_column("identity_group")
        batch_op.drop_column("lineup_exposures")
    with op.batch_alter_table("answers", schema=None) as batch_op:
        batch_op.drop_column("changes")
    with op.batch_alter_table("raters", schema=None) as batch_op:
        batch_op.drop_column("last_answer_at")
        batch_op.drop_column("lineup_trials")
        batch_op.add_column(sa.Column("current_trial_answers", sa.Integer(), server_default="0", nullable=False))
