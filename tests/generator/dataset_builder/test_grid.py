"""The real GRID clips (../shared/data/grid-samples): 8 speakers, 3 s each; skipped when ../shared is absent."""

from __future__ import annotations

import shutil

import pytest
import soundfile as sf
from click.testing import CliRunner

from generator.data.dataset import DataOptions, SpeechFaceDataset
from generator.data.manifest import read_manifest
from generator.dataset_builder.cli import build
from generator.dataset_builder.pipeline import BuildOptions, build_dataset
from generator.dataset_builder.sources import find_videos
from generator.dataset_builder.video import decode_video

pytestmark = pytest.mark.slow
SPEAKERS = 8


@pytest.fixture(scope="module")
def grid_build(grid_samples, tmp_path_factory):
    out = tmp_path_factory.mktemp("grid")
    result = CliRunner().invoke(build, [str(grid_samples), "--out", str(out), "--layout", "one-per-identity"])
    assert result.exit_code == 0, result.output
    return out


def test_every_clip_decodes_to_3_s_with_audio(grid_samples):
    for video in find_videos(grid_samples, "one-per-identity"):
        decoded = decode_video(video.path, 1.0, lambda t, rgb: rgb.shape)
        assert decoded.duration == pytest.approx(3.0, abs=0.05)
        assert decoded.results == [(288, 360, 3)] * 3
        assert len(decoded.soundtrack.samples) == pytest.approx(3 * 16_000, abs=800)


def test_faces_are_found_in_most_frames(grid_build):
    import json

    figures = json.loads((grid_build / "build_summary.json").read_text())
    assert len(figures["identities"]) == SPEAKERS and figures["totals"]["frames"] == 3 * SPEAKERS
    assert figures["totals"]["no_face"] + figures["totals"]["several_faces"] <= SPEAKERS // 2
    assert figures["totals"]["outlier"] == 0  # one speaker per clip


def test_audio_windows_are_exactly_1_s_at_16_khz_mono(grid_build):
    manifest = read_manifest(grid_build)
    for pair in manifest.pairs:
        info = sf.info(str(pair.audio))
        assert (info.samplerate, info.channels, info.frames) == (16_000, 1, 16_000)


def test_manifest_loads_into_the_dataset(grid_build):
    manifest = read_manifest(grid_build)
    assert len(manifest.identities) == SPEAKERS
    assert manifest.splits == ["unseen_identity"]  # one clip per speaker: nothing to hold out within a speaker
    item = SpeechFaceDataset(manifest, DataOptions(image_size=64, audio_seconds=1.0))[0]
    assert tuple(item["speech"].shape) == (1, 16_000) and tuple(item["face"].shape) == (3, 64, 64)


def test_another_speakers_clip_is_removed_as_outlier(grid_samples, tmp_path):
    videos = sorted(grid_samples.glob("*.mpg"))
    mixed = tmp_path / "in" / "speaker"
    mixed.mkdir(parents=True)
    shutil.copy(videos[0], mixed / "take1.mpg")
    shutil.copy(videos[0], mixed / "take2.mpg")
    shutil.copy(videos[1], mixed / "intruder.mpg")
    result = build_dataset(tmp_path / "in", tmp_path / "out", BuildOptions(), progress=False)
    row = result.figures["identities"]["speaker"]
    assert row["outlier"] == 3 and row["frames"] == 9
    assert not any("intruder" in str(p.face) for p in read_manifest(result.manifest).pairs)
