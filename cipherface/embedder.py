"""The interface of a face embedder: photo in, one embedding per detected face out."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import TypeAlias

import numpy as np

Image: TypeAlias = "str | Path | bytes | np.ndarray"
"""A photo: a file path, encoded image bytes (JPEG/PNG), or a BGR uint8 array."""


@dataclass(frozen=True)
class Face:
    """One detected face: its embedding, its box in the photo and the detector's confidence."""

    embedding: np.ndarray
    box: tuple[int, int, int, int]  # x, y, width, height
    confidence: float

    @property
    def area(self) -> int:
        return self.box[2] * self.box[3]


class Embedder(ABC):
    """Turns photos into embeddings on the key owner's side."""

    name: str
    #: Length of the embeddings this embedder produces.
    dim: int
    #: The face detector in front of the model (recorded with every embedding).
    detector: str | None = None

    @abstractmethod
    def represent(self, image: Image) -> list[Face]:
        """Every face in the photo, largest first; raises NoFaceError when there is none."""

    @abstractmethod
    def threshold(self, metric: str) -> float:
        """The distance at or below which two faces are the same person, for a metric."""

    def largest_face(self, image: Image) -> Face:
        return self.represent(image)[0]

    def describe(self) -> dict[str, object]:
        """What made an embedding: recorded in embedding files, galleries and key folders, so a probe
        from another model is refused and thresholds default to this model's."""
        thresholds = {}
        for metric in ("cosine", "euclidean"):
            try:
                thresholds[metric] = float(self.threshold(metric))
            except Exception:  # a model without a threshold for this metric
                continue
        return {
            "embedder": self.name,
            "model": self.name,
            "detector": self.detector,
            "dim": int(self.dim),
            "thresholds": thresholds,
        }
