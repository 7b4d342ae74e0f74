"""End to end on small synthetic videos: broken files are reported while the others carry on; resume; workers."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest

from generator.data.manifest import read_manifest
from generator.data.split import SplitOptions
from generator.dataset_builder.extract import ExtractOptions, marker_path
from generator.dataset_builder.pipeline import BuildOptions, build_dataset
from generator.dataset_builder.sources import find_videos
from tests.generator.dataset_builder.media import canvas, index_frame, speech_like, with_faces, write_video

OPTIONS = BuildOptions(extract=ExtractOptions(windows=3), split=SplitOptions(test_fraction=0.3))


def chord(seconds: float, rate: int = 44_100) -> np.ndarray:
    """Four sustained notes: music without the pauses of speech."""
    t = np.arange(int(seconds * rate)) / rate
    return 0.08 * sum(np.sin(2 * np.pi * f * t) for f in (220, 277, 330, 440))


@pytest.fixture(scope="module")
def videos(tmp_path_factory):
    """ann and bo talk in two videos each; plus one video with no audio, a corrupt file, a zero-length video, a
    video with nobody in it, one with two people and one with bo's face over music."""
    from tests.generator.dataset_builder.media import talking_face_video

    root = tmp_path_factory.mktemp("videos")
    for name, seed in (("ann/talk1.mp4", 1), ("ann/talk2.mp4", 2), ("bo/talk1.mp4", 3), ("bo/talk2.mp4", 4)):
        talking_face_video(root / name, seed=seed)
    write_video(root / "ann" / "mute.mp4", lambda i: with_faces([(90, 40, 170)]), 20, 10)
    (root / "ann" / "corrupt.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(range(256)) * 20)
    write_video(root / "ann" / "empty.mkv", index_frame, 0, 10, speech_like(1.0))
    write_video(root / "bo" / "nobody.mp4", lambda i: canvas(), 20, 10, speech_like(2.0, seed=5))
    two = with_faces([(10, 60, 170), (200, 60, 170)], width=400)
    write_video(root / "bo" / "crowd.mp4", lambda i: two, 20, 10, speech_like(2.0, seed=6))
    write_video(root / "bo" / "band.mp4", lambda i: with_faces([(90, 40, 170)]), 20, 10, chord(2.0))
    return root


@pytest.fixture(scope="module")
def built(videos, tmp_path_factory):
    out = tmp_path_factory.mktemp("built")
    return out, build_dataset(videos, out, OPTIONS, progress=False)


def private_copy(out, tmp_path):
    """The module's build copied (timestamps kept), for a test that builds into it again."""
    import shutil

    return shutil.copytree(out, tmp_path / "copy")


@pytest.mark.slow
def test_broken_files_are_reported_and_the_rest_is_built(built):
    _, result = built
    errors = {e.source.rsplit("/", 1)[-1]: e.message for e in result.errors}
    assert set(errors) == {"mute.mp4", "corrupt.mp4", "empty.mkv"}
    assert "no audio track" in errors["mute.mp4"]
    assert "not a readable video" in errors["corrupt.mp4"]
    assert "no frames" in errors["empty.mkv"]
    ann, bo = result.figures["identities"]["ann"], result.figures["identities"]["bo"]
    assert (ann["videos"], ann["failed_videos"], ann["frames"], ann["faces_kept"]) == (5, 3, 4, 4)
    assert (bo["no_face"], bo["several_faces"], bo["faces_kept"]) == (2, 2, 6)
    manifest = read_manifest(result.manifest)
    assert manifest.identities == ["ann", "bo"] and len(manifest) == result.figures["pairs"] == 30
    assert "unseen_speech" in manifest.splits


@pytest.mark.slow
def test_report_names_reasons_failures_and_the_contact_sheet(built):
    out, result = built
    report = result.report.read_text()
    assert "| bo | 5 | 0 | 10.0 | 10 | 2 | 2 | 0 | 0 | 0 | 6 |" in report
    assert "corrupt.mp4" in report and "no audio track" in report
    assert "![rejected faces](rejected_faces.png)" in report
    from PIL import Image

    with Image.open(out / "rejected_faces.png") as sheet:
        assert sheet.height == 2 * (112 + 14)  # a row for no_face, a row for several_faces
    assert json.loads((out / "build_summary.json").read_text())["totals"]["no_face"] == 2


@pytest.mark.slow
def test_resume_skips_finished_videos_and_redoes_changed_ones(videos, built, tmp_path):
    out = private_copy(built[0], tmp_path)
    markers = {v.key: marker_path(out, v).stat().st_mtime_ns for v in find_videos(videos)}
    before = (out / "manifest.csv").read_text()
    again = build_dataset(videos, out, OPTIONS, progress=False)
    assert {v.key: marker_path(out, v).stat().st_mtime_ns for v in find_videos(videos)} == markers
    assert again.manifest.read_text() == before

    changed = replace(OPTIONS, extract=replace(OPTIONS.extract, margin=0.1))
    build_dataset(videos, out, changed, progress=False)
    talk = next(v for v in find_videos(videos) if v.key == "ann/talk1")
    assert marker_path(out, talk).stat().st_mtime_ns != markers["ann/talk1"]
    assert json.loads(marker_path(out, talk).read_text())["options"]["margin"] == 0.1


@pytest.mark.slow
def test_parallel_workers_give_the_same_dataset(videos, built, tmp_path):
    _, serial = built
    parallel = build_dataset(videos, tmp_path / "parallel", replace(OPTIONS, workers=2), progress=False)
    assert parallel.manifest.read_text() == serial.manifest.read_text()
    assert parallel.figures["identities"] == serial.figures["identities"]


@pytest.mark.slow
def test_pause_heuristic_removes_music_without_extracting_again(videos, built, tmp_path):
    out = private_copy(built[0], tmp_path)
    markers = {v.key: marker_path(out, v).stat().st_mtime_ns for v in find_videos(videos)}
    strict = replace(OPTIONS, cleaning=replace(OPTIONS.cleaning, min_pauses=0.1))
    result = build_dataset(videos, out, strict, progress=False)
    assert {v.key: marker_path(out, v).stat().st_mtime_ns for v in find_videos(videos)} == markers
    bo = result.figures["identities"]["bo"]
    assert (bo["no_speech"], bo["windows_no_pauses"], bo["faces_kept"]) == (2, 6, 4)
    assert not any("band" in str(p.face) for p in read_manifest(result.manifest).pairs)


def test_an_unreadable_marker_is_redone(tmp_path, make_talking_video):
    from generator.dataset_builder.extract import extract_video
    from generator.dataset_builder.sources import VideoSource

    video = VideoSource("ann", make_talking_video(tmp_path / "talk.mp4", seconds=1.0), "talk")
    options = ExtractOptions(windows=1)
    first = extract_video(video, options, tmp_path / "out")
    marker_path(tmp_path / "out", video).write_text('{"identity": "ann"')  # cut short
    again = extract_video(video, options, tmp_path / "out")
    assert again == first and json.loads(marker_path(tmp_path / "out", video).read_text())["name"] == "talk"
