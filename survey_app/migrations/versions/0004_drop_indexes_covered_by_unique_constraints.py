"""drop the single-column indexes that a unique constraint's index already covers

Revision ID: 0004
Revises: 0003

trials.rater_id leads uq_trial_position (rater_id, position) and answers.trial_id leads uq_answer_trial_question
(trial_id, question): both lookups use those indexes, and every saved answer no longer updates a fourth index.
"""

from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.drop_index("ix_answers_trial_id", table_name="answers")
    op.drop_index("ix_trials_rater_id", table_name="trials")


def downgrade() -> None:
    op.create_index("ix_trials_rater_id", "trials", ["rater_id"], unique=False)
    op.create_index("ix_answers_trial_id", "answers", ["trial_id"], unique=False)
