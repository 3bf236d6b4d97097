"""The shared labelled photos (``shared/data/faces`` beside a checkout) for the tests of plugins."""

from __future__ import annotations

import csv
import os
from pathlib import Path

import numpy as np
import pytest


def faces_dir(near: str | os.PathLike[str]) -> Path:
    """The photo folder: ``$CIPHERFACE_FACES``, or ``shared/data/faces`` beside a folder above
    ``near`` (a test file). Missing photos fail the test (CI always has them); they never skip it."""
    env = os.environ.get("CIPHERFACE_FACES")
    candidates = [Path(env)] if env else [p / "shared" / "data" / "faces" for p in Path(near).resolve().parents]
    for folder in candidates:
        if (folder / "pairs.csv").is_file():
            return folder
    pytest.fail(
        f"the shared face photos are missing: no shared/data/faces/pairs.csv above {near} (set CIPHERFACE_FACES)"
    )


def a_few_pairs(
    near: str | os.PathLike[str], count: int = 12, images: tuple[str, ...] = ("img1.jpg", "img2.jpg")
) -> tuple[list[dict[str, str]], dict[str, np.ndarray]]:
    """The first ``count`` labelled pairs starting at ``images`` (same- and different-person) and the
    DeepFace Dlib embedding of the largest face of every photo in them (each embedded once)."""
    from cipherface.plugins import get_embedder

    folder = faces_dir(near)
    with open(folder / "pairs.csv") as fh:
        pairs = [r for r in csv.DictReader(fh) if r["image_a"] in images][:count]
    embedder = get_embedder("deepface")
    names = sorted({r["image_a"] for r in pairs} | {r["image_b"] for r in pairs})
    return pairs, {n: embedder.represent(str(folder / n))[0].embedding for n in names}
