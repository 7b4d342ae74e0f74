"""`python -m survey_app`: the survey-app command line."""

from survey_app.cli import main

main()
