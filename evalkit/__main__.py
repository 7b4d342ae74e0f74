"""``python -m evalkit`` (and ``torchrun ... -m evalkit run ...``)."""

from evalkit.cli import main

if __name__ == "__main__":  # not when a spawned worker process imports the main module (evalkit.features.dlib_detect)
    main()
