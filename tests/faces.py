"""Where the shared labelled photos are: ../shared/data/faces beside the checkout."""

import os
from pathlib import Path

import pytest

FACES = Path(os.environ.get("CIPHERFACE_FACES", Path(__file__).resolve().parents[2] / "shared" / "data" / "faces"))


def faces_dir() -> Path:
    """The photo folder; a missing folder fails the test (CI always has it), it never skips."""
    if not (FACES / "pairs.csv").is_file():
        pytest.fail(f"the shared face photos are missing: expected {FACES}/pairs.csv (set CIPHERFACE_FACES)")
    return FACES
