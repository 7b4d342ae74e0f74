"""Errors of the evaluation toolkit; the CLI reports every ``Wav2PixError`` as one line and exit status 2."""

from generator.errors import Wav2PixError


class EvalError(Wav2PixError):
    """An option, input file or weights file cannot be used for an evaluation."""


class FeatureUnavailable(Exception):
    """A feature extractor's default weights are not installed; metrics that need it are reported as unavailable."""


class NotApplicable(EvalError):
    """A metric cannot be computed on one split (too few clips or faces); that row is reported as not applicable."""
