"""Encrypted 1:1 face verification: photos in, a key-owner decision out.

The key owner embeds and encrypts; the matcher (public bundle only) computes
the encrypted distance; the key owner decrypts and decides.  Every stage is
timed so users can see where the cost is.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from cipherface.embedder import Embedder, Face, Image
from cipherface.roles import Decision, KeyOwner, Matcher
from cipherface.timing import Stopwatch


@dataclass
class Comparison:
    face_a: int  # index among the faces of photo A (0 = largest)
    face_b: int
    decision: Decision

    def to_dict(self) -> dict[str, Any]:
        return {"face_a": self.face_a, "face_b": self.face_b, **self.decision.to_dict()}


@dataclass
class Verification:
    faces_a: list[Face]
    faces_b: list[Face]
    comparisons: list[Comparison]
    timings_ms: dict[str, float] = field(default_factory=dict)

    @property
    def same_person(self) -> bool:
        """True when any compared pair of faces is decided to be the same person."""
        return any(c.decision.same_person for c in self.comparisons)

    def to_dict(self) -> dict[str, Any]:
        def boxes(faces: list[Face]) -> list[dict[str, Any]]:
            return [{"box": list(f.box), "confidence": f.confidence} for f in faces]

        first = self.comparisons[0].decision
        return {
            **first.to_dict(),
            "same_person": self.same_person,
            "faces_a": boxes(self.faces_a),
            "faces_b": boxes(self.faces_b),
            "comparisons": [c.to_dict() for c in self.comparisons],
            "timings_ms": self.timings_ms,
        }


def verify(
    owner: KeyOwner,
    matcher: Matcher,
    embedder: Embedder,
    image_a: Image,
    image_b: Image,
    *,
    metric: str = "cosine",
    threshold: float | None = None,
    all_faces: bool = False,
) -> Verification:
    """Compare the largest face of each photo (or every pair of faces with ``all_faces``)."""
    watch = Stopwatch()
    threshold = embedder.threshold(metric) if threshold is None else threshold
    with watch("embed"):
        faces_a, faces_b = embedder.represent(image_a), embedder.represent(image_b)
    used_a = range(len(faces_a)) if all_faces else range(1)
    used_b = range(len(faces_b)) if all_faces else range(1)
    with watch("encrypt"):
        enc_a = {i: owner.encrypt(faces_a[i].embedding, metric) for i in used_a}
        enc_b = {j: owner.encrypt(faces_b[j].embedding, metric, probe=True) for j in used_b}
    with watch("encrypted_distance"):
        results = {(i, j): matcher.distance(enc_a[i], enc_b[j]) for i in used_a for j in used_b}
    with watch("decrypt_decide"):
        comparisons = [Comparison(i, j, owner.decide(blob, threshold, metric)) for (i, j), blob in results.items()]
    return Verification(faces_a, faces_b, comparisons, watch.ms)
