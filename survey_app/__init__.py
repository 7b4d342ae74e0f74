"""survey_app: a Flask app that runs the human study of faces generated from speech, and analyses it.

Raters see a real photo (the baseline) beside an image to judge and answer (1) its quality with respect to the
baseline on the seed study's five-point scale (5 Identical, 4 Good, 3 Fair, 2 Poor, 1 Bad) and (2) "Could you
recognise the person in the baseline photo from the image to judge?" (Yes / No / Not sure). Optionally they also
do a lineup task first: a generated face and N real faces (the target and foils), pick the person; chance is 1/N.

Other study kinds (`create-study --kind`, survey_app.study_kinds) hear the voice: voice -> face matching with a real
and a generated arm (pick the speaker's face among N), HYPE-style real-or-generated judgements of single images
(untimed, and optionally at fixed exposure times), and pairwise comparison of two or more runs joined on their clip
ids (which face fits the voice, or the person's photo; Bradley-Terry scores). Every session that plays voices starts
with an audio check of counted tones (survey_app.audio_check); answers to a voice trial are refused until the server
has seen a play of the clip reach its end on its own clock (survey_app.playback).

Quick start (README section)
----------------------------
    survey-app create-study --run RUN_DIR --title "Wav2Pix 64px" --pairs 32 --trials-per-session 32 \
        [--lineup-size 2] [--seed 1] [--consent-file consent.txt --consent-version 2]   # lineup size <= identities
    survey-app create-admin --username me            # asks for a password (>= 12 characters), or
                                                     # SURVEY_APP_ADMIN_PASSWORD; again: new password, sessions end
    survey-app serve --host 127.0.0.1 --port 8000    # gunicorn, one worker per CPU; HTTPS in front + --secure-cookies
                                                     # (+ --proxy-hops N behind N reverse proxies); Ctrl+C stops it
    # raters: http://HOST/s/<slug>  (Prolific: append ?PROLIFIC_PID={{%PROLIFIC_PID%}}&STUDY_ID=...&SESSION_ID=...;
    #          MTurk survey-link HITs: ?workerId=...&assignmentId=...&hitId=...)
    # admin:  http://HOST/admin/  (progress, MOS, recognition, screening, agreement, power planner, exports)
    survey-app export --study <slug> --out reports/human_study   # CSVs, JSON, codebook, results_summary.{json,md}

Global options (or environment): --data-dir / SURVEY_APP_DATA_DIR (SQLite database, image store, secret key;
default ./survey_data), --database-url / SURVEY_APP_DATABASE_URL (e.g. postgresql+psycopg://user@localhost/survey),
SURVEY_APP_SECRET_KEY (else a random key kept in DATA_DIR/secret_key). The schema is migrated with Alembic
(survey_app/migrations) by `survey-app migrate` and before create-study, create-admin, serve and export.

Input contract of create-study (an `evalkit run` folder, or any folder of real/generated pairs)
-------------------------------------------------------------------------------------------
RUN_DIR/pairs.csv with columns split,identity,real,generated (image paths relative to the CSV), optional column
group (matching key for foils and impostors), optional columns clip (a clip id stable across runs) and audio (the
speech clip the face was generated from; the voice kinds need it), optional RUN_DIR/results.json (the evalkit run
record; its provenance is kept). See
survey_app.manifest for the full rules. `evalkit run` is expected to write exactly this file.

Design of a session
-------------------
Lineup trials (if enabled) come first, then the pair trials: the rater's least-filled test pairs (one per identity
before any identity repeats), one attention check (the question itself says which answer to give), one "same person,
other photo" control and one "different person" control. Each block is shuffled per rater from a seed stored with the
rater, and starts with its own instructions and worked examples with their answers. Pairs always show the baseline
photo on the left and the image to judge on the right, labelled. A lineup's photos (target and foils alike) are drawn
per trial from each identity's pool of photos that nothing else shows, least shown first: within a session no photo
repeats while the pool lasts, so "pick the face I have not seen" is worth nothing (survey_app.rater_sessions).

Every answer is saved when given and can be changed until the rater presses Next (the answer row counts the changes);
the personal link /r/<token>/trial resumes; the consent form carries a one-time nonce from which the rater's token is
derived, so a double click on Start makes one session. Results: survey_app.results (screening rules, each stated, with
counts; MOS with t and rater x item bootstrap CIs, also of the control pairs; Wilson CIs; Krippendorff's alpha from
the `krippendorff` package, with the reason when it is undefined; power planner) and survey_app.export (codebook and
summary for the evalkit report).

What the rater's browser may not learn
--------------------------------------
Nothing sent to a rater tells a test from a control or a real photo from a generated face: the trial page's markup is
the same for every pair trial (tests/survey_app/test_cheating.py checks it), images are served by slot under the
trial's random id with no ETag or Last-Modified, and every image of a study has one pixel size and one byte length
(survey_app.study_builder). Every image of a session is new to the rater when it appears, when the manifest has
enough photos (create-study warns where it has not).

Security
--------
CSRF: a signed double-submit cookie (survey_app.csrf; measured faster than Flask-WTF's session-backed token on the
raters' hot path). Admin logins: Flask-Login sessions in Flask's signed cookie, revocable (a session generation on the
admin row, incremented by logout and password change) and expiring (idle and absolute). Login throttling:
Flask-Limiter with a `limits` storage on the app's own database (survey_app.throttle). Request bodies over 16 KB are
refused with 413, also when sent chunked. The SQLite files and the data folder are private to their owner.
"""
