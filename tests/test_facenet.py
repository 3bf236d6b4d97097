"""FaceNet 512-d (facenet512-casia) on the shared photos: offline, both detectors, decisions equal
plaintext on the 520 pairs, 512-d galleries that refuse probes of another model, embedding files."""

import json
import subprocess
import sys

import numpy as np
import pytest

from cipherface import KeyOwner, Matcher
from cipherface.errors import GalleryError
from cipherface.evaluation import evaluate_metric
from cipherface.identification import Identifier
from cipherface.plugins import embedder_for, get_protocol, registry

MODEL = "facenet512-casia"


@pytest.fixture(scope="module")
def facenet():
    return embedder_for(MODEL)


@pytest.fixture(scope="module")
def facenet_pairs(facenet, faces):
    from conftest import embed_pairs

    return embed_pairs(lambda: facenet, faces)


def test_facenet_is_a_registered_512d_embedder_that_runs_offline_with_both_detectors(facenet, faces):
    assert MODEL in registry().embedders
    info = facenet.describe()
    assert (info["embedder"], info["model"], info["dim"], info["detector"]) == (MODEL, MODEL, 512, "opencv")
    assert set(info["thresholds"]) == {"cosine", "euclidean"}
    for detector in ("opencv", "dlib"):
        face = embedder_for(MODEL, detector).represent(faces / "img1.jpg")[0]
        assert face.embedding.shape == (512,) and abs(np.linalg.norm(face.embedding) - 1) < 1e-3
        assert face.box[2] > 50 and face.box[3] > 50


@pytest.mark.parametrize(("backend", "metric"), [("tenseal", "cosine"), ("pyfhel", "euclidean")])
def test_520_pairs_encrypted_decisions_equal_plaintext_at_d512(facenet, facenet_pairs, backend, metric):
    pairs, embeddings = facenet_pairs
    owner = KeyOwner.generate(backend)
    matcher = Matcher(owner.public_bundle())
    r = evaluate_metric(owner, matcher, embeddings, pairs, metric, facenet.threshold(metric), progress=False)
    assert r["pairs"] == 520
    assert r["decision_agreement"] == 1.0, (metric, r["disagreeing_pairs"])
    assert r["max_abs_error"] < 1e-4
    assert r["plaintext"]["accuracy"] >= 0.9  # measured 0.95-0.96 (docs/accuracy.md)


def test_512d_gallery_identifies_whoever_plaintext_does_and_refuses_another_model(
    tmp_path, faces, facenet, facenet_pairs, pair_embeddings
):
    from test_gallery import people

    _, embeddings = facenet_pairs
    who = people(faces)
    enrolled = {}
    for photo in sorted(embeddings):
        enrolled.setdefault(who[photo], photo)
    names, vectors = list(enrolled), [embeddings[p] for p in enrolled.values()]
    made = facenet.describe()
    cosine = get_protocol("cosine")
    with Identifier.open(
        tmp_path / "g.db", tmp_path / "keys", create=True, backend="tenseal", dim=512, embedder=made
    ) as ident:
        ident.enroll(names, vectors, progress=False, made_by=made)
        assert ident.embedder["model"] == MODEL and ident.default_threshold() == facenet.threshold("cosine")
        recorded = json.loads((tmp_path / "keys" / "embedders.json").read_text())
        assert recorded[str((tmp_path / "g.db").resolve())]["model"] == MODEL  # the key folder's own record
        g = np.array([cosine.prepare(v) for v in vectors])
        identified = plain_identified = 0
        for photo in sorted(embeddings)[::3]:  # a third of the photos as probes (each is 512 ciphertexts)
            got = ident.identify(embeddings[photo], top_k=1, made_by=made)
            values = 1 - g @ cosine.prepare(embeddings[photo])
            best = int(np.argmin(values))
            plain = names[best] if values[best] <= facenet.threshold("cosine") else None
            assert got.identity == plain, photo
            if plain == who[photo]:
                plain_identified += 1
                identified += got.identity == who[photo]
        assert identified == plain_identified > 0
        # a Dlib probe (another model, another dimension) is refused naming both models
        _, dlib_embeddings = pair_embeddings
        with pytest.raises(GalleryError, match=r"made by model 'Dlib'.*holds model 'facenet512-casia'"):
            ident.identify(dlib_embeddings["img1.jpg"], made_by=embedder_for("Dlib").describe())


def test_embed_writes_a_file_that_enroll_and_identify_take_and_check(tmp_path, faces):
    def cli(*args, check=True):
        return subprocess.run(
            [sys.executable, "-m", "cipherface", *map(str, args)], capture_output=True, text=True, check=check
        )

    out = tmp_path / "people.npz"
    report = json.loads(cli("embed", faces / "img1.jpg", faces / "img2.jpg", "--out", out, "--json").stdout)
    assert report["embeddings"] == 2 and report["model"] == "Dlib" and report["dim"] == 128
    data = np.load(out, allow_pickle=False)
    assert data["embeddings"].shape == (2, 128) and data["boxes"].shape == (2, 4)
    assert json.loads(str(data["info"]))["detector"] == "opencv"
    names = tmp_path / "names.txt"
    names.write_text("alice\nalice\n")
    gallery, keys = tmp_path / "g.db", tmp_path / "keys"
    cli("enroll", "--gallery", gallery, "--key", keys, "--npy", out, "--names", names)
    info = json.loads(cli("gallery", "info", gallery, "--json").stdout)
    assert info["embedder"]["model"] == "Dlib" and info["embedder"]["detector"] == "opencv"
    probe = tmp_path / "probe.npz"
    cli("embed", faces / "img3.jpg", "--out", probe)
    result = json.loads(cli("identify", "--gallery", gallery, "--key", keys, "--npy", probe, "--json").stdout)
    assert result["candidates"][0]["name"] == "alice"
    # verify takes embedding files too, and answers in DeepFace's vocabulary as well
    verdict = json.loads(cli("verify", probe, faces / "img1.jpg", "--json").stdout)
    assert {"verified", "distance", "threshold", "model", "detector_backend", "similarity_metric"} <= set(verdict)
    assert verdict["model"] == "Dlib" and set(verdict["facial_areas"]) == {"img1", "img2"}
    # a probe from another model is refused with both names, exit 2
    other = tmp_path / "other.npz"
    cli("embed", faces / "img3.jpg", "--out", other, "--model", MODEL)
    refused = cli("identify", "--gallery", gallery, "--key", keys, "--npy", other, check=False)
    assert refused.returncode == 2
    assert "facenet512-casia" in refused.stderr and "'Dlib'" in refused.stderr
