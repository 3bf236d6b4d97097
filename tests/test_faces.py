"""End-to-end encrypted verification on the shared real photos."""

import json
import subprocess
import sys

import numpy as np
import pytest

from cipherface import Matcher
from cipherface.evaluation import evaluate_metric, write_report
from cipherface.verification import verify


@pytest.mark.parametrize(
    ("a", "b", "same"),
    [
        ("img1.jpg", "img2.jpg", True),
        ("img1.jpg", "img3.jpg", False),
        ("target.jpg", "img1.jpg", True),
        ("target.jpg", "img2.jpg", True),
        ("target.jpg", "img3.jpg", False),
    ],
)
@pytest.mark.parametrize("metric", ["cosine", "euclidean"])
def test_verify_decides_like_the_labels(owner, matcher, embedder, faces, a, b, same, metric):
    result = verify(owner, matcher, embedder, faces / a, faces / b, metric=metric)
    assert result.same_person is same
    assert set(result.timings_ms) == {"embed", "encrypt", "encrypted_distance", "decrypt_decide"}


def test_all_faces_compares_every_pair_of_faces(owner, matcher, embedder, faces):
    result = verify(owner, matcher, embedder, faces / "couple.jpg", faces / "img1.jpg", all_faces=True)
    assert len(result.faces_a) == 2 and len(result.comparisons) == 2


@pytest.mark.parametrize(("backend", "b", "same"), [("tenseal", "img2.jpg", True), ("pyfhel", "img3.jpg", False)])
def test_verify_cli_json(faces, backend, b, same):
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "cipherface",
            "verify",
            str(faces / "img1.jpg"),
            str(faces / b),
            "--backend",
            backend,
            "--json",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    out = json.loads(proc.stdout)
    assert out["same_person"] is same and out["backend"] == backend
    assert out["threshold"] == 0.07 and out["metric"] == "cosine"
    assert {"keys", "embed", "encrypt", "encrypted_distance", "decrypt_decide"} == set(out["timings_ms"])


@pytest.mark.parametrize("metric", ["cosine", "euclidean"])
def test_520_real_pairs_encrypted_decisions_equal_plaintext(owner, embedder, pair_embeddings, metric, tmp_path):
    pairs, embeddings = pair_embeddings
    assert len(pairs) == 520
    res = evaluate_metric(
        owner, Matcher(owner.public_bundle()), embeddings, pairs, metric, embedder.threshold(metric), progress=False
    )
    assert res["decision_agreement"] == 1.0, res["disagreeing_pairs"]
    assert res["encrypted"] == res["plaintext"]
    assert res["plaintext"]["accuracy"] >= 0.94
    assert res["max_abs_error"] < 1e-5
    summary = {"backend": owner.backend.name, "metrics": {metric: res}}
    js, png = write_report(summary, tmp_path)
    assert json.loads(js.read_text())["metrics"][metric]["decision_agreement"] == 1.0
    assert png.stat().st_size > 10_000


def test_widely_separated_pairs_keep_their_margin(pair_embeddings):
    """The pairs the data's README names as decided with a wide margin, in plaintext cosine."""
    _, e = pair_embeddings

    def cos(a, b):
        return 1 - e[a] @ e[b] / np.linalg.norm(e[a]) / np.linalg.norm(e[b])

    for a, b in [("img1.jpg", "img2.jpg"), ("img5.jpg", "img6.jpg"), ("img8.jpg", "img9.jpg")]:
        assert cos(a, b) < 0.07
    for a, b in [("img1.jpg", "img3.jpg"), ("img6.jpg", "img8.jpg"), ("img6.jpg", "img9.jpg")]:
        assert cos(a, b) > 0.07


def test_demo_runs_on_registry_photos_and_every_case_is_right():
    proc = subprocess.run([sys.executable, "-m", "cipherface", "demo"], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "UNEXPECTED" not in proc.stdout
    assert "-> astronaut ok" in proc.stdout and "a photo with no frontal face is a clear error" in proc.stdout
