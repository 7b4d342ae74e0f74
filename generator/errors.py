"""User-facing errors: every bad input ends as one of these, with a message naming the file and the problem."""


class Wav2PixError(Exception):
    """Base class of errors that the command-line tools report as one line and a non-zero exit."""


class DataError(Wav2PixError):
    """A manifest, audio file or face image cannot be used."""


class CheckpointError(Wav2PixError):
    """A checkpoint file is missing, truncated, foreign or does not match the requested model."""


class ConfigError(Wav2PixError):
    """A training configuration or override is invalid."""
