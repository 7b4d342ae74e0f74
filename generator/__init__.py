"""Wav2Pix: speech-conditioned face generation (Duarte et al., ICASSP 2019), re-implemented in PyTorch 2."""

__version__ = "0.1.0"
