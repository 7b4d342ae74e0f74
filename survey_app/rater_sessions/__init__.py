"""A rater's session, by craft: `assignment` (token, balanced least-filled assignment, seeded order, lineup photos
drawn per trial), `queries` (the rater pages' reads, precompiled Core statements) and `answers` (the answer protocol:
answers saved as given and revisable until the rater presses Next). The names the views and the analysis use are
re-exported here."""

from survey_app.rater_sessions.answers import (
    AUDIO_CHECK_FAILED,
    HYPE_VALUES,
    QUALITY_VALUES,
    RECOGNITION_VALUES,
    TIE,
    ClipNotPlayed,
    InvalidAnswer,
    SessionEnded,
    TrialNotOpen,
    allowed_values,
    record_answers,
)
from survey_app.rater_sessions.assignment import (
    DuplicateParticipant,
    PlatformIdentity,
    pick_least_filled,
    rater_token,
    start_session,
)
from survey_app.rater_sessions.queries import (
    QUESTIONS_BY_KIND,
    RaterRef,
    TrialNotFound,
    TrialView,
    find_rater,
    find_rater_and_current_trial,
    find_trial,
    hash_token,
    show_current_trial,
    unmark_current_trial_shown,
)

__all__ = [
    "AUDIO_CHECK_FAILED",
    "HYPE_VALUES",
    "QUALITY_VALUES",
    "QUESTIONS_BY_KIND",
    "RECOGNITION_VALUES",
    "TIE",
    "ClipNotPlayed",
    "DuplicateParticipant",
    "InvalidAnswer",
    "PlatformIdentity",
    "RaterRef",
    "SessionEnded",
    "TrialNotFound",
    "TrialNotOpen",
    "TrialView",
    "allowed_values",
    "find_rater",
    "find_rater_and_current_trial",
    "find_trial",
    "hash_token",
    "pick_least_filled",
    "rater_token",
    "record_answers",
    "show_current_trial",
    "start_session",
    "unmark_current_trial_shown",
]
