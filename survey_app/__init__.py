"""survey_app: a Flask app that runs the human study of faces generated from speech, and analyses it.

Raters see a real photo (the baseline) beside an image to judge and answer (1) its quality with respect to the
baseline on the seed study's five-point scale (5 Identical, 4 Good, 3 Fair, 2 Poor, 1 Bad) and (2) "Could you
recognise the person in the baseline photo from the image to judge?" (Yes / No / Not sure). Optionally they also
do a lineup task first: a generated face and N real faces (the target and foils), pick the person; chance is 1/N.

Quick start (README section)
----------------------------
    survey-app create-study --run RUN_DIR --title "Wav2Pix 64px" --pairs 32 --trials-per-session 32 \
        [--lineup-size 4] [--seed 1] [--consent-file consent.txt --consent-version 2]
    survey-app create-admin --username me            # asks for a password (>= 12 characters)
    survey-app serve --host 127.0.0.1 --port 8000    # gunicorn, one worker per CPU; HTTPS in front + --secure-cookies
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
group (matching key for foils), optional RUN_DIR/results.json (the evalkit run record; its provenance is kept). See
survey_app.manifest for the full rules. `evalkit run` is expected to write exactly this file.

Design of a session
-------------------
Lineup trials (if enabled) come first, then the pair trials: the rater's least-filled test pairs (one per identity
before any identity repeats), one attention check (the question itself says which answer to give), one "same person,
other photo" control and one "different person" control. Order and left/right placement are random per rater from a
seed stored with the rater. Every answer is saved when given (first answer final, retries idempotent); the personal
link /r/<token>/trial resumes. Results: survey_app.results (screening, MOS with t and rater x item bootstrap CIs,
Wilson CIs, Krippendorff's alpha, power planner) and survey_app.export (codebook and summary for the evalkit report).
"""
