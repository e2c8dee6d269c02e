"""Shared fixtures. Real data lives in ``../shared/data`` beside the checkout (or $EDGE_EMOTION_DATA)
and is read where it lies: tests that need it skip with a reason when it is absent, and what they
derive from it (a re-timed clip, a truncated file) is made at test time in a temporary folder.
The repository carries no media of its own for tests but the package's sample clip
(``edge_emotion/assets/sample_astronaut.mp4``, made by ``tools/make_sample_clip.py``)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from media import SAMPLE_CLIP, make_vfr_offset

REPO_ROOT = Path(__file__).resolve().parents[1]


def shared_data_dir() -> Path | None:
    env = os.environ.get("EDGE_EMOTION_DATA")
    candidates = [Path(env)] if env else []
    candidates.append(REPO_ROOT.parent / "shared" / "data")
    for path in candidates:
        if path.is_dir():
            return path
    return None


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """``../shared/data`` (real RAVDESS, CREMA-D, FER2013); skips the test when it is not there."""
    path = shared_data_dir()
    if path is None:
        pytest.skip("real data not found: ../shared/data is absent and EDGE_EMOTION_DATA is unset")
    return path


@pytest.fixture(scope="session")
def crema_flv(shared_data) -> Path:
    """CREMA-D ``1001_DFA_HAP_XX.flv`` where it lies: actor 1001, happy, 2.0 s; VP6 480x360 at
    29.97 fps, MP3 44.1 kHz mono and a data stream; one face in view, speech throughout."""
    path = shared_data / "crema-d" / "video" / "1001_DFA_HAP_XX.flv"
    if not path.is_file():
        pytest.skip(f"real clip not found: {path}")
    return path


@pytest.fixture(scope="session")
def vfr_offset_mp4(shared_data, tmp_path_factory) -> Path:
    """CREMA-D ``1001_DFA_NEU_XX.flv``'s first 1.6 s re-timed by :func:`media.make_vfr_offset`: a
    variable frame rate (40 frames) and an audio track that starts 0.5 s late; made once per session."""
    src = shared_data / "crema-d" / "video" / "1001_DFA_NEU_XX.flv"
    if not src.is_file():
        pytest.skip(f"real clip not found: {src}")
    return make_vfr_offset(src, tmp_path_factory.mktemp("derived") / "1001_DFA_NEU_XX_vfr_offset.mp4")


@pytest.fixture(scope="session")
def sample_clip() -> Path:
    """The package's sample clip (:data:`SAMPLE_CLIP`), made by the project: always present."""
    assert SAMPLE_CLIP.is_file(), f"{SAMPLE_CLIP} is missing: rebuild it with tools/make_sample_clip.py"
    return SAMPLE_CLIP
