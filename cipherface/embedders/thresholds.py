"""DeepFace's published decision thresholds (deepface 0.0.103,
``deepface.modules.verification.thresholds``), kept here so choosing a
threshold never imports DeepFace.  A test checks they still agree.

Thresholds are distances: for ``euclidean`` the encrypted protocol computes
the *squared* distance, which is compared with ``threshold ** 2``.
"""

from __future__ import annotations

from cipherface.errors import CipherfaceError

DEFAULT_MODEL = "Dlib"

THRESHOLDS: dict[str, dict[str, float]] = {
    "VGG-Face": {"cosine": 0.68, "euclidean": 1.17},
    "Facenet": {"cosine": 0.40, "euclidean": 10.0},
    "Facenet512": {"cosine": 0.30, "euclidean": 23.56},
    "ArcFace": {"cosine": 0.68, "euclidean": 4.15},
    "Dlib": {"cosine": 0.07, "euclidean": 0.6},
    "SFace": {"cosine": 0.593, "euclidean": 10.734},
    "OpenFace": {"cosine": 0.10, "euclidean": 0.55},
    "DeepFace": {"cosine": 0.23, "euclidean": 64.0},
    "DeepID": {"cosine": 0.015, "euclidean": 45.0},
    "GhostFaceNet": {"cosine": 0.65, "euclidean": 35.71},
    "Buffalo_L": {"cosine": 0.55, "euclidean": 0.6},
}


def default_threshold(model: str, metric: str) -> float:
    try:
        return THRESHOLDS[model][metric]
    except KeyError:
        raise CipherfaceError(
            f"no published threshold for model {model!r} and metric {metric!r}; "
            f"models: {', '.join(THRESHOLDS)}; metrics: cosine, euclidean (or pass --threshold)"
        ) from None
