"""``python -m evalkit`` (and ``torchrun ... -m evalkit run ...``)."""

from evalkit.cli import main

main()
