"""Output names of generated and real images."""

from pathlib import Path

import pytest

from evalkit.errors import EvalError
from evalkit.evalset import unique_names


def test_names_are_stems_unless_they_clash_within_an_identity():
    items = [("alice", Path("/d/faces/train/alice/face_0.jpg")), ("alice", Path("/d/faces/test/alice/face_0.jpg")),
             ("alice", Path("/d/faces/test/alice/face_1.jpg")), ("bob", Path("/d/faces/test/bob/face_0.jpg"))]
    names = unique_names(items)
    assert names[0] != names[1] and names[0].startswith("alice/") and "train" in names[0]
    assert len(set(names)) == 4
    assert unique_names(items[2:]) == ["alice/face_1", "bob/face_0"]


def test_the_same_file_twice_is_an_error():
    with pytest.raises(EvalError, match="twice"):
        unique_names([("alice", Path("/d/a.png")), ("alice", Path("/d/a.png"))])
