"""Play-to-end, enforced on the server: the page reports each `play` and `ended` event of a trial's clip, and the
server counts a play as complete only when its own clock says that at least the clip's duration (less
PLAY_TOLERANCE_S) passed between the two. Answers to an audio trial are refused until one play was complete
(survey_app.rater_sessions.answers); the clip may be played again at any time.

A script that sends `ended` without playing gains nothing: it must still wait the clip's length after a `play`. What
the server cannot know is whether the sound reached the rater's ears: the audio check (survey_app.audio_check) covers
that.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from survey_app.models import AudioClip, PlayEvent, Trial, as_utc, utc_now
from survey_app.rater_sessions import RaterRef, TrialView
from survey_app.study_kinds import PLAY_TOLERANCE_S

PLAY_EVENTS = ("play", "ended")
MAX_CLIENT_DURATION_MS = 10 * 60 * 1000
MAX_PLAYS_PER_TRIAL = 100  # replays are allowed, without end they would only fill the play_events table


class TooManyPlays(Exception):
    """More than MAX_PLAYS_PER_TRIAL plays of one trial's clip: a script, not a listener."""


class PlayRefused(Exception):
    """An `ended` event that the server cannot count as a complete play (no play before it, or too soon)."""


@dataclass(frozen=True)
class PlayState:
    plays: int
    played: bool  # a play reached the end: answers are accepted


def record_play_event(
    db: Session, rater: RaterRef, trial: TrialView, event: str, client_duration_ms: int | None
) -> PlayState:
    """Stores one play event of the rater's current audio trial `trial` and returns the trial's play state,
    committing. `ended` after a play that lasted at least the clip's duration - PLAY_TOLERANCE_S on the server's
    clock marks the trial played; any other `ended` is stored and raises PlayRefused; a play beyond
    MAX_PLAYS_PER_TRIAL raises TooManyPlays. The caller has checked
    that `trial` is the current one, has audio and `event` is one of PLAY_EVENTS."""
    now = utc_now()
    row = db.execute(
        select(Trial.play_started_at, Trial.played_at, Trial.plays, AudioClip.duration_s)
        .join(AudioClip, AudioClip.id == trial.audio_id)
        .where(Trial.id == trial.id, Trial.rater_id == rater.id)
    ).one()
    started, played_at, plays, duration_s = row
    complete = None
    changes: dict = {}
    if event == "play" and plays >= MAX_PLAYS_PER_TRIAL:
        raise TooManyPlays(trial.id)
    if event == "play":
        changes = {"play_started_at": now, "plays": plays + 1}
        plays += 1
    else:
        elapsed = (now - as_utc(started)).total_seconds() if started is not None else None
        complete = elapsed is not None and elapsed >= duration_s - PLAY_TOLERANCE_S
        if complete:
            changes = {"play_started_at": None} | ({} if played_at else {"played_at": now})
            played_at = played_at or now
    db.add(
        PlayEvent(
            trial_id=trial.id, event=event, client_duration_ms=client_duration_ms, received_at=now, complete=complete
        )
    )
    if changes:
        db.execute(update(Trial).where(Trial.id == trial.id).values(**changes))
    db.commit()
    if complete is False:
        raise PlayRefused(trial.id)
    return PlayState(plays, played_at is not None)
