import random
from collections import Counter
from pathlib import Path

import pytest
from PIL import Image as PilImage
from sqlalchemy import select

from survey_app.manifest import ManifestError, load_run_input
from survey_app.models import Image, ItemKind, Study
from survey_app.study_builder import StudyOptions, create_study, select_balanced_pairs

from .support import IDENTITIES, write_run_dir


def test_selection_alternates_splits_and_spreads_identities(run_dir: Path) -> None:
    pairs = load_run_input(run_dir).pairs
    selected = select_balanced_pairs(pairs, 6, random.Random(1))
    assert Counter(pair.split for pair in selected) == {"test": 3, "val": 3}
    assert len({pair.identity for pair in selected}) == 6
    assert select_balanced_pairs(pairs, 0, random.Random(1)).__len__() == len(pairs)


def test_study_holds_tests_controls_attention_lineups_and_examples(db, study: str) -> None:
    row = db.scalar(select(Study).where(Study.slug == study))
    kinds = Counter(item.kind for item in row.items)
    assert kinds[ItemKind.TEST] == 8
    assert kinds[ItemKind.ATTENTION] == 1
    assert kinds[ItemKind.CONTROL_SAME] == kinds[ItemKind.CONTROL_DIFFERENT] == 6
    assert kinds[ItemKind.LINEUP] == 8
    assert kinds[ItemKind.EXAMPLE] == kinds[ItemKind.EXAMPLE_SAME] == 1
    assert kinds[ItemKind.EXAMPLE_DIFFERENT] == 2  # lineup size 3: the lineup example shows 3 people
    assert row.source["design_notes"] == []
    images = {image.id: image for image in db.scalars(select(Image))}
    for item in row.items:
        if item.kind in (ItemKind.CONTROL_SAME, ItemKind.EXAMPLE_SAME):
            assert images[item.reference_image_id].identity == images[item.probe_image_id].identity
            assert item.reference_image_id != item.probe_image_id
            assert not images[item.probe_image_id].is_generated
        if item.kind in (ItemKind.CONTROL_DIFFERENT, ItemKind.EXAMPLE_DIFFERENT):
            assert images[item.reference_image_id].identity != images[item.probe_image_id].identity
        if item.kind == ItemKind.LINEUP:
            assert images[item.probe_image_id].is_generated and images[item.probe_image_id].identity == item.identity


def test_no_image_serves_two_purposes(db, study: str) -> None:
    """Each pair item has photos of its own, lineups have their own generated faces, and the lineup pool holds only
    photos that nothing else shows: a rater can meet no image twice in a session."""
    row = db.scalar(select(Study).where(Study.slug == study))
    uses = Counter()
    for item in row.items:
        if item.kind in (ItemKind.EXAMPLE_SAME, ItemKind.EXAMPLE_DIFFERENT):
            uses[item.probe_image_id] += 1  # the examples share the example's baseline
        else:
            uses.update(image for image in (item.reference_image_id, item.probe_image_id) if image)
    assert max(uses.values()) == 1
    pool = db.scalars(select(Image).where(Image.lineup_pool)).all()
    assert {image.identity for image in pool} == set(IDENTITIES)
    assert not {image.id for image in pool} & set(uses)
    assert all(not image.is_generated for image in pool)


def test_every_stored_image_has_one_pixel_size_and_one_byte_length(app, tmp_path: Path) -> None:
    """Real photos 24 px and noisy, generated faces 8 px and flat: stored, neither the size in pixels nor in bytes
    tells them apart."""
    run_dir = write_run_dir(tmp_path / "mixed", identities=("a", "b", "c"), photos_per_identity=6)
    rng = random.Random(0)
    for path in (run_dir / "real").iterdir():
        noise = bytes(rng.randrange(256) for _ in range(24 * 24 * 3))
        PilImage.frombytes("RGB", (24, 24), noise).save(path)
    factory = app.extensions["survey_sessions"]
    with factory() as session:
        options = StudyOptions(title="m", slug="mixed", seed=2, test_pairs=4, test_trials_per_session=4, lineup_size=2)
        create_study(session, load_run_input(run_dir), app.config["SURVEY_IMAGE_STORE"], options)
        session.commit()
    store: Path = app.config["SURVEY_IMAGE_STORE"]
    sizes = {path.stat().st_size for path in store.iterdir()}
    assert len(sizes) == 1
    for path in store.iterdir():
        with PilImage.open(path) as picture:
            picture.load()
            assert picture.size == (24, 24)


def test_images_are_stored_as_png_under_random_ids_without_metadata(app, db, study: str) -> None:
    store: Path = app.config["SURVEY_IMAGE_STORE"]
    stored = sorted(path.name for path in store.iterdir())
    ids = sorted(f"{image.id}.png" for image in db.scalars(select(Image)))
    assert stored == ids
    for name in stored:
        assert len(name) == len("0123456789abcdef0123456789abcdef.png")
        with PilImage.open(store / name) as picture:
            assert picture.format == "PNG" and not picture.info.get("exif")


def test_pool_photos_carry_the_identity_group(app, db, tmp_path: Path) -> None:
    run_dir = write_run_dir(tmp_path / "grouped", groups=True)
    options = StudyOptions(title="g", slug="grouped", seed=3, test_pairs=6, test_trials_per_session=4, lineup_size=3)
    create_study(db, load_run_input(run_dir), app.config["SURVEY_IMAGE_STORE"], options)
    groups = {pair.identity: pair.group for pair in load_run_input(run_dir).pairs}
    pool = db.scalars(select(Image).where(Image.lineup_pool)).all()
    assert pool and all(image.identity_group == groups[image.identity] for image in pool)


def test_a_manifest_with_too_few_photos_still_makes_a_study_and_says_what_repeats(app, db, tmp_path: Path) -> None:
    run_dir = write_run_dir(tmp_path / "small", identities=("a", "b"), photos_per_identity=2)
    options = StudyOptions(title="s", slug="small", seed=1, test_pairs=2, test_trials_per_session=2, lineup_size=2)
    study = create_study(db, load_run_input(run_dir), app.config["SURVEY_IMAGE_STORE"], options)
    assert study.source["design_notes"]
    assert any("lineup" in note for note in study.source["design_notes"])


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"slug": "Bad Slug"}, "slug"),
        ({"slug": "study-one"}, "already exists"),
        ({"lineup_size": 7}, "lineup-size"),
        ({"lineup_size": 1}, "lineup-size"),
        ({"test_trials_per_session": 0}, "trials-per-session"),
    ],
)
def test_invalid_options_are_refused(make_study, study: str, overrides: dict, message: str) -> None:
    with pytest.raises(ManifestError, match=message):
        make_study(**({"slug": "another"} | overrides))


def test_a_single_identity_cannot_make_a_study(app, db, tmp_path: Path) -> None:
    run_dir = write_run_dir(tmp_path / "one", identities=("solo",))
    options = StudyOptions(title="s", slug="solo", seed=1, test_pairs=0, test_trials_per_session=1, lineup_size=0)
    with pytest.raises(ManifestError, match="at least two identities"):
        create_study(db, load_run_input(run_dir), app.config["SURVEY_IMAGE_STORE"], options)


def test_16bit_source_images_are_stored_as_their_8bit_faces(app, db, tmp_path: Path) -> None:
    """A 16-bit grey PNG (values x257 of an 8-bit face) is stored as that face, not as a white image."""
    import numpy as np

    run_dir = write_run_dir(tmp_path / "deep")
    pair = load_run_input(run_dir).pairs[0]
    grey = np.random.default_rng(0).integers(0, 256, (32, 32), dtype=np.uint8)
    PilImage.fromarray(grey.astype(np.uint16) * 257).save(pair.real)
    options = StudyOptions(title="d", slug="deep-images", seed=1, test_pairs=0, test_trials_per_session=4,
                           lineup_size=0)
    create_study(db, load_run_input(run_dir), app.config["SURVEY_IMAGE_STORE"], options)
    source = pair.real.relative_to(run_dir).as_posix()
    image = db.scalars(select(Image).where(Image.source_path == source)).first()
    with PilImage.open(app.config["SURVEY_IMAGE_STORE"] / f"{image.id}.png") as stored:
        np.testing.assert_array_equal(np.asarray(stored.convert("RGB"))[..., 0], grey)
