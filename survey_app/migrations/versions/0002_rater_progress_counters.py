"""rater progress counters: trials answered and trials in the session, on the rater's row

Revision ID: 0002
Revises: 0001

A rater answers trials strictly in order (only the first open trial takes answers), so the number of fully answered
trials is also the position of the current trial: the rater's pages look it up by position instead of counting
every trial's answers on every request.
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

# Questions asked per item kind when this revision was written (survey_app.rater_sessions.QUESTIONS_BY_KIND).
ONE_QUESTION_KINDS = ("ATTENTION", "LINEUP")
BACKFILL = f"""
UPDATE raters SET
    trials_total = (SELECT count(*) FROM trials WHERE trials.rater_id = raters.id),
    trials_answered = (
        SELECT count(*) FROM trials JOIN items ON items.id = trials.item_id
        WHERE trials.rater_id = raters.id
        AND (SELECT count(*) FROM answers WHERE answers.trial_id = trials.id)
            >= CASE WHEN items.kind IN {ONE_QUESTION_KINDS!r} THEN 1 ELSE 2 END
    )
"""


def upgrade() -> None:
    with op.batch_alter_table("raters", schema=None) as batch_op:
        batch_op.add_column(sa.Column("trials_answered", sa.Integer(), server_default="0", nullable=False))
        batch_op.add_column(sa.Column("trials_total", sa.Integer(), server_default="0", nullable=False))
    op.execute(BACKFILL)


def downgrade() -> None:
    with op.batch_alter_table("raters", schema=None) as batch_op:
        batch_op.drop_column("trials_total")
        batch_op.drop_column("trials_answered")
