"""Image sets larger than memory: ``.npy`` files written piece by piece and read back as memory maps.

A generated set of N faces at S px is N x S x S x 3 bytes (10,000 faces at 128 px: 490 MB; VoxCeleb-scale sets
several GB). The cache of generated faces holds them as ``.npy`` files; a run writes each batch into the file as it is
generated (``stored_array``) and reads the set back as a read-only memory map, so the pages are the operating
system's page cache, shared and reclaimable, and every stage that walks the set (hashing, feature extraction, writing
PNGs) reads it a piece at a time.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np


@contextmanager
def stored_array(path: Path, shape: tuple[int, ...], dtype: np.dtype | type) -> Iterator[np.ndarray]:
    """A writable memory map of a new ``.npy`` file ``shape``/``dtype``: filled in the block, flushed and moved to
    ``path`` atomically when the block ends without an error (removed otherwise). Raises OSError when it cannot be
    written."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp.npy")
    array = np.lib.format.open_memmap(tmp, mode="w+", dtype=dtype, shape=shape)
    try:
        yield array
        array.flush()
        del array
        tmp.replace(path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


SCRATCH_DIR = "scratch"  # under the cache folder: files of this run's image sets, removed as soon as they are mapped


def scratch_array(shape: tuple[int, ...], dtype: np.dtype | type, cache_dir: Path | None) -> np.ndarray:
    """A writable array for one run's image set (the real faces, a reference generator's faces): a memory map of a
    file under ``<cache_dir>/scratch/`` that is removed at once (the mapping keeps its pages, which are the operating
    system's page cache, written back and reclaimable, until the array is freed), so memory does not grow with the
    set; an in-memory array when ``cache_dir`` is None. Raises OSError when the folder cannot be written."""
    if cache_dir is None:
        return np.empty(shape, dtype)
    folder = cache_dir / SCRATCH_DIR
    folder.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=folder, prefix=f"{os.getpid()}-", suffix=".npy") as handle:
        return np.lib.format.open_memmap(handle.name, mode="w+", dtype=dtype, shape=shape)
