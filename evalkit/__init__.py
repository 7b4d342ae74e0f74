"""evalkit: the benchmark harness for speech-to-face generators (FID, identity accuracy, landmark ratio and more)."""

__version__ = "0.1.0"
