"""Shared fixtures. Real data lives in ``../shared/data`` beside the checkout (or $EDGE_EMOTION_DATA);
tests that need it skip with a reason when it is absent. Small samples carried in the repository
live in ``tests/data``."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
SAMPLES_DIR = REPO_ROOT / "tests" / "data"


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
def samples_dir() -> Path:
    """Small licensed samples carried in the repository (tests/data)."""
    return SAMPLES_DIR
