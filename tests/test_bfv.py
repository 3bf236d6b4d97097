"""BFV end to end: quantised embeddings, exact integer distances, decisions equal to the quantised
plaintext decisions on the shared pairs (1:1) and in the packed gallery (1:N), on both BFV backends."""

import numpy as np
import pytest

from cipherface import KeyOwner, Matcher
from cipherface.capabilities import protocol_for
from cipherface.errors import DimensionError, IntegrityError, RangeError
from cipherface.evaluation import evaluate_metric
from cipherface.identification import Identifier
from cipherface.plugins import get_protocol

BFV_BACKENDS = ("tenseal-bfv", "pyfhel-bfv")
THRESHOLDS = {"cosine": 0.07, "euclidean": 0.6}  # DeepFace's Dlib thresholds


@pytest.fixture(scope="module")
def bfv_owners():
    return {name: KeyOwner.generate(name) for name in BFV_BACKENDS}


@pytest.mark.parametrize(("backend", "metric"), [("tenseal-bfv", "cosine"), ("pyfhel-bfv", "euclidean")])
def test_520_pairs_encrypted_decisions_equal_quantised_plaintext(bfv_owners, pair_embeddings, backend, metric):
    pairs, embeddings = pair_embeddings
    owner = bfv_owners[backend]
    result = evaluate_metric(
        owner, Matcher(owner.public_bundle()), embeddings, pairs, metric, THRESHOLDS[metric], progress=False
    )
    assert result["pairs"] == 520
    # exact arithmetic: every decrypted distance is the quantised plaintext's, bit for bit
    assert result["max_abs_error"] == 0.0
    assert result["decision_agreement"] == 1.0, result["disagreeing_pairs"]
    # what 8-bit quantisation costs against the float model (measured: 99.4 % / 99.6 % agreement)
    assert result["quantisation"] == {"scale": 127, "bits": 8}
    assert result["float_decision_agreement"] >= 0.98
    assert abs(result["encrypted"]["accuracy"] - result["float_plaintext"]["accuracy"]) <= 0.02


@pytest.mark.parametrize(("backend", "metric"), [("tenseal-bfv", "euclidean"), ("pyfhel-bfv", "cosine")])
def test_packed_gallery_top1_equals_quantised_plaintext(tmp_path, pair_embeddings, backend, metric):
    _, embeddings = pair_embeddings
    photos = sorted(embeddings)
    rng = np.random.default_rng(11)
    synthetic = rng.normal(size=(300, 128))
    synthetic *= 0.5 / np.linalg.norm(synthetic, axis=1, keepdims=True)
    names = [f"synthetic-{i}" for i in range(len(synthetic))] + photos[:40]
    vectors = list(synthetic) + [embeddings[p] for p in photos[:40]]
    with Identifier.open(tmp_path / "g.db", tmp_path / "keys", create=True, backend=backend, metric=metric) as ident:
        ident.enroll(names, vectors, progress=False)
        p = ident.protocol
        assert p.quant_scale == 127
        rows = np.array([p.gallery_row(v) for v in vectors])
        for photo in photos[40:44] + photos[:1]:
            row, offset = p.probe_row(embeddings[photo])
            values = rows @ row + offset  # the quantised plaintext model, in integers
            got = ident.identify(embeddings[photo], top_k=3, threshold=THRESHOLDS[metric])
            order = np.argsort(values, kind="stable")[:3]
            assert [c.value for c in got.candidates] == [float(values[i]) for i in order], photo
            assert got.candidates[0].name == names[order[0]]
            assert got.candidates[0].accepted == p.decide(values[order[0]], THRESHOLDS[metric])
        assert ident.identify(embeddings[photos[0]], top_k=1).identity == photos[0]  # enrolled photo itself
        assert ident.verify()["blocks"] >= 1  # canaries are integers here, checked exactly


def test_bfv_result_forged_from_the_public_key_is_refused(bfv_owners):
    owner = bfv_owners["tenseal-bfv"]
    matcher = Matcher(owner.public_bundle())
    a, b = owner.encrypt(np.full(128, 0.05), "cosine"), owner.encrypt(np.full(128, 0.04), "cosine")
    honest = matcher.distance(a, b)
    assert owner.decrypt_result(honest, "cosine") == protocol_for(owner.backend, "cosine").plaintext(
        protocol_for(owner.backend, "cosine").prepare(np.full(128, 0.05)),
        protocol_for(owner.backend, "cosine").prepare(np.full(128, 0.04)),
    )
    from cipherface import envelope

    meta = envelope.decode(honest).meta
    forged = matcher.backend.dump_ciphertext(
        matcher.backend.encrypt(np.zeros(8), depth=0),
        kind=envelope.RESULT,
        meta={k: v for k, v in meta.items() if k != "level"},
    )
    with pytest.raises(IntegrityError, match="canary"):
        owner.decrypt_result(forged, "cosine")


def test_quantisation_is_explicit_and_bounded():
    p = get_protocol("euclidean").quantised()
    assert np.array_equal(p.prepare(np.array([0.5, -0.25, 1.0])), [64.0, -32.0, 127.0])
    with pytest.raises(RangeError, match="8-bit"):
        p.prepare(np.array([1.2, 0.0]))
    cos = get_protocol("cosine").quantised()
    assert cos.unit == 127**2 and cos.cutoff(0.07) == pytest.approx(0.07 * 127**2)
    assert cos.distance(cos.cutoff(0.07)) == pytest.approx(0.07)


def test_bfv_backend_refuses_reals(bfv_owners):
    with pytest.raises(DimensionError, match="integers"):
        bfv_owners["pyfhel-bfv"].backend.encrypt([0.25])
