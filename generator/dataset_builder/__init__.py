"""``wav2pix data build``: audio-face datasets from raw talking-face videos, cleaned automatically.

Stages: ``sources`` (which videos, which identity) → ``extract`` per video, in parallel and resumable (``video``
decoding, ``faces`` detection and crops, ``speech`` windows and voice activity) → ``cleaning`` per identity (face
descriptor outliers, speech thresholds, balancing) → the leak-free split of ``generator.data.split`` → manifest and
``report``. ``pipeline`` ties them together; ``cli`` is the click command.
"""
