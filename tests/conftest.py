"""Shared pytest fixtures."""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np
import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]


# ---------------------------------------------------------------------------------------------------------------
# data fixtures (owned by train/data; see tests/test_data.py)
# ---------------------------------------------------------------------------------------------------------------

SHARED_OMNIGLOT = REPO_ROOT.parent / "shared" / "data" / "omniglot"


@pytest.fixture
def shared_omniglot() -> Path:
    """The read-only official Omniglot zips at ``<repo>/../shared/data/omniglot``; skips when absent.

    Never copy these into the project, never write beside them.
    """
    if not (SHARED_OMNIGLOT / "images_background.zip").is_file():
        pytest.skip(f"Omniglot zips not found at {SHARED_OMNIGLOT} (the shared data folder is absent)")
    return SHARED_OMNIGLOT


def make_png(seed: int, size: int = 12) -> bytes:
    """A small deterministic gray PNG, encoded."""
    import cv2

    rng = np.random.default_rng(seed)
    ok, buf = cv2.imencode(".png", rng.integers(0, 256, (size, size), dtype=np.uint8))
    assert ok
    return buf.tobytes()


def write_omniglot_zip(
    path: Path, split: str = "background", alphabets: int = 2, characters: int = 2, drawers: int = 3
) -> Path:
    """A tiny zip with the official layout ``images_<split>/<alphabet>/characterNN/<id>_<drawer>.png``."""
    with zipfile.ZipFile(path, "w") as zf:
        n = 0
        for a in range(alphabets):
            for c in range(characters):
                n += 1
                for d in range(drawers):
                    member = f"images_{split}/Alphabet_{a}/character{c + 1:02d}/{n:04d}_{d + 1:02d}.png"
                    zf.writestr(member, make_png(n * 100 + d))
    return path


@pytest.fixture
def make_omniglot_zip():
    """``make_omniglot_zip(path, split="background", alphabets=2, characters=2, drawers=3) -> path``."""
    return write_omniglot_zip


@pytest.fixture
def tiny_omniglot_zip(tmp_path: Path) -> Path:
    """2 alphabets x 2 characters x 3 drawers in the official zip layout (not named like an official zip)."""
    return write_omniglot_zip(tmp_path / "tiny_omniglot.zip")


# ---------------------------------------------------------------------------------------------------------------
# end of data fixtures
# ---------------------------------------------------------------------------------------------------------------
