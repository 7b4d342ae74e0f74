"""answers stored for the rater's current trial, counted on the rater's row

Revision ID: 0003
Revises: 0002

Saving an answer then decides whether the trial is complete from the rater's row alone. On PostgreSQL the insert of
the answers and the update of the rater are one statement: the update waits for any other save of the same rater and
then reads the row as that save left it, so two questions of one trial saved at once still complete the trial.
Migrate with the server stopped: an answer that a server of the previous version saved during the migration would
not be counted, and its rater would stay on that trial.
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

BACKFILL = """
UPDATE raters SET current_trial_answers = (
    SELECT count(*) FROM answers JOIN trials ON trials.id = answers.trial_id
    WHERE trials.rater_id = raters.id AND trials.position = raters.trials_answered
)
"""


def upgrade() -> None:
    with op.batch_alter_table("raters", schema=None) as batch_op:
        batch_op.add_column(sa.Column("current_trial_answers", sa.Integer(), server_default="0", nullable=False))
    op.execute(BACKFILL)


def downgrade() -> None:
    with op.batch_alter_table("raters", schema=None) as batch_op:
        batch_op.drop_column("current_trial_answers")
