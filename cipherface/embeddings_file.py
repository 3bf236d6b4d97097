"""Embedding files (``cipherface embed --out F.npz``): embed once, reuse in every command.

A NumPy ``.npz`` archive, read with ``allow_pickle=False``: ``embeddings`` (n x d), ``photos``
(n, the photo each row comes from), ``face_index`` (n, 0 = largest face), ``boxes`` (n x 4,
x y w h), ``confidence`` (n) and ``info``, a JSON text naming the embedder, model, detector,
dimension and default thresholds (``Embedder.describe()``), so a gallery can refuse embeddings
of another model. A plain ``.npy`` array is accepted too, without that record.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from cipherface.embedder import Embedder, Face, Image
from cipherface.errors import DimensionError, EmbeddingError

FORMAT = "cipherface-embeddings/1"


@dataclass
class EmbeddingFile:
    embeddings: np.ndarray  # n x d
    photos: list[str]
    face_index: np.ndarray
    boxes: np.ndarray
    confidence: np.ndarray
    info: dict[str, Any] | None  # Embedder.describe(); None for a bare .npy

    def __len__(self) -> int:
        return len(self.embeddings)


def save(path: str | Path, rows: list[tuple[str, int, Any]], info: dict[str, Any]) -> Path:
    """Write (photo, face index, Face) rows with what made them."""
    path = Path(path)
    if path.suffix != ".npz":
        path = path.with_suffix(path.suffix + ".npz")
    np.savez(
        path,
        embeddings=np.array([f.embedding for _, _, f in rows], dtype=np.float64).reshape(len(rows), -1),
        photos=np.array([p for p, _, _ in rows], dtype=str),
        face_index=np.array([i for _, i, _ in rows], dtype=np.int64),
        boxes=np.array([f.box for _, _, f in rows], dtype=np.int64).reshape(len(rows), 4),
        confidence=np.array([f.confidence for _, _, f in rows], dtype=np.float64),
        info=np.array(json.dumps({"format": FORMAT, **info}, sort_keys=True)),
    )
    return path


def load(path: str | Path) -> EmbeddingFile:
    """An embedding file (.npz from ``cipherface embed``) or a bare .npy array; clear errors otherwise."""
    path = Path(path)
    try:
        data = np.load(path, allow_pickle=False)
    except (OSError, ValueError, TypeError) as exc:
        raise DimensionError(f"{path}: not a readable .npy array of numbers or .npz embedding file ({exc})") from None
    if isinstance(data, np.ndarray):
        arr = _matrix(data, path)
        n = len(arr)
        return EmbeddingFile(arr, [str(path)] * n, np.zeros(n, int), np.zeros((n, 4), int), np.zeros(n), None)
    with data:
        missing = {"embeddings", "photos", "info"} - set(data.files)
        if missing:
            raise DimensionError(f"{path}: not a cipherface embedding file (lacks {sorted(missing)})")
        try:
            info = json.loads(str(data["info"]))
        except ValueError:
            raise DimensionError(f"{path}: its info record is not JSON") from None
        if not isinstance(info, dict) or info.get("format") != FORMAT:
            raise DimensionError(f"{path}: unknown embedding file format {str(info)[:60]!r}")
        arr = _matrix(data["embeddings"], path)
        if info.get("dim") != arr.shape[1]:
            raise DimensionError(f"{path}: records d={info.get('dim')} but holds {arr.shape[1]}-d embeddings")
        photos = [str(p) for p in data["photos"]]
        n = len(arr)
        if len(photos) != n:
            raise DimensionError(f"{path}: {len(photos)} photo names for {n} embeddings")
        get = {k: data[k] for k in ("face_index", "boxes", "confidence") if k in data.files}
        return EmbeddingFile(
            arr,
            photos,
            get.get("face_index", np.zeros(n, int)),
            get.get("boxes", np.zeros((n, 4), int)),
            get.get("confidence", np.zeros(n)),
            info,
        )


def _matrix(data: np.ndarray, path: Path) -> np.ndarray:
    try:
        arr = np.asarray(data, dtype=np.float64)
    except (ValueError, TypeError):
        raise DimensionError(f"{path}: not a readable .npy array of numbers (its values are not numbers)") from None
    if arr.ndim == 1:
        arr = arr[None, :]
    if arr.ndim != 2 or 0 in arr.shape:
        raise DimensionError(f"{path}: expected one embedding or an N x d array, got shape {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise DimensionError(f"{path}: contains NaN or infinity")
    return arr


def is_embedding_file(image: object) -> bool:
    return isinstance(image, (str, Path)) and Path(image).suffix in (".npz", ".npy")


class FileAwareEmbedder(Embedder):
    """An embedder that takes embedding files where photos are expected: a file's faces are read,
    not embedded again, and a file made by another model is refused naming both."""

    def __init__(self, inner: Embedder) -> None:
        self.inner = inner
        self.name, self.dim, self.detector = inner.name, inner.dim, inner.detector

    def threshold(self, metric: str) -> float:
        return self.inner.threshold(metric)

    def describe(self) -> dict[str, Any]:
        return self.inner.describe()

    def represent(self, image: Image) -> list[Face]:
        if not is_embedding_file(image):
            return self.inner.represent(image)
        loaded = load(image)  # type: ignore[arg-type]
        mine = self.inner.describe()
        if loaded.info and (loaded.info.get("model"), loaded.info.get("dim")) != (mine["model"], mine["dim"]):
            raise EmbeddingError(
                f"{image} was made by model {loaded.info.get('model')!r} (d={loaded.info.get('dim')}), not "
                f"{mine['model']!r} (d={mine['dim']}): pass --model {loaded.info.get('model')}"
            )
        if loaded.embeddings.shape[1] != mine["dim"]:
            raise EmbeddingError(
                f"{image} holds {loaded.embeddings.shape[1]}-d embeddings; {mine['model']} makes {mine['dim']}-d"
            )
        return [
            Face(embedding=e, box=tuple(int(v) for v in b), confidence=float(c))  # type: ignore[arg-type]
            for e, b, c in zip(loaded.embeddings, loaded.boxes, loaded.confidence)
        ]


def model_of(*paths: object) -> str | None:
    """The model the first embedding file among ``paths`` records (None: photos, or a bare .npy)."""
    for path in paths:
        if isinstance(path, (str, Path)) and Path(path).suffix == ".npz":
            info = load(path).info
            return None if info is None else info.get("model")
    return None
