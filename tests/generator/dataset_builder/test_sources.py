"""Finding the videos of INPUT and their identities."""

from __future__ import annotations

import pytest

from generator.dataset_builder.sources import find_videos
from generator.errors import DataError


def touch(path):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"")
    return path


def test_identity_folders(tmp_path):
    touch(tmp_path / "bo" / "b.MP4")
    touch(tmp_path / "ann" / "x.mkv")
    touch(tmp_path / "ann" / "notes.txt")
    videos = find_videos(tmp_path)
    assert [(v.identity, v.name) for v in videos] == [("ann", "x"), ("bo", "b")]


def test_one_per_identity(tmp_path):
    touch(tmp_path / "s1.mpg")
    touch(tmp_path / "s2.mp4")
    assert [v.identity for v in find_videos(tmp_path, "one-per-identity")] == ["s1", "s2"]


def test_videos_at_the_top_need_the_other_layout(tmp_path):
    touch(tmp_path / "s1.mpg")
    with pytest.raises(DataError, match="--layout one-per-identity"):
        find_videos(tmp_path)


def test_csv_paths_are_relative_to_the_csv(tmp_path):
    video = touch(tmp_path / "clips" / "a.mp4")
    listing = tmp_path / "list.csv"
    listing.write_text("identity,video\nann,clips/a.mp4\n")
    [source] = find_videos(listing)
    assert source.identity == "ann" and source.path == video.resolve()


@pytest.mark.parametrize("text, message", [
    ("who,video\nann,a.mp4\n", "missing column"),
    ("identity,video\nann,\n", "list.csv:2: empty"),
    ("identity,video\n../x,a.mp4\n", "cannot be a folder name"),
    ("identity,video\nann,a.mp4\nann,b/a.mp4\n", "two videos named 'a'"),
])
def test_bad_csv(tmp_path, text, message):
    listing = tmp_path / "list.csv"
    listing.write_text(text)
    with pytest.raises(DataError, match=message):
        find_videos(listing)


def test_nothing_to_build(tmp_path):
    with pytest.raises(DataError, match="no video files"):
        find_videos(tmp_path)
    with pytest.raises(DataError, match="not a folder of videos"):
        find_videos(tmp_path / "missing")


def test_a_binary_file_as_the_video_list_is_one_clear_error(tmp_path):
    listing = tmp_path / "list.csv"
    listing.write_bytes(b"\xff\xd8\xff\xe0 a JPEG, not a list")
    with pytest.raises(DataError, match="list.csv: not a CSV video list"):
        find_videos(listing)
