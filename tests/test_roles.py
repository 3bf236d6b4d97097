"""Key owner and matcher on every backend, and across backends."""

import os
import stat

import numpy as np
import pytest

from cipherface import KeyOwner, Matcher
from cipherface.errors import (
    BackendMismatchError,
    DimensionError,
    KeyMismatchError,
    SecretKeyRequiredError,
    WrongKindError,
)
from cipherface.plugins import get_protocol

TOL = 1e-5


@pytest.mark.parametrize("metric", ["euclidean", "cosine"])
@pytest.mark.parametrize("dim", [128, 512])
def test_matcher_distance_decrypts_to_numpy_value(owner, matcher, metric, dim):
    rng = np.random.default_rng(dim)
    a, b = rng.normal(size=dim) * 0.1, rng.normal(size=dim) * 0.1
    result = matcher.distance(owner.encrypt(a, metric), owner.encrypt(b, metric))
    value = owner.decrypt_result(result, metric)
    p = get_protocol(metric)
    assert abs(value - p.plaintext(p.prepare(a), p.prepare(b))) < TOL


def test_euclidean_decision_compares_squared_distance_with_squared_threshold(owner, matcher):
    a = np.zeros(128)
    b = np.zeros(128)
    b[0] = 0.5  # distance 0.5, squared 0.25
    decision = owner.decide(
        matcher.distance(owner.encrypt(a, "euclidean"), owner.encrypt(b, "euclidean")), 0.6, "euclidean"
    )
    assert decision.same_person
    assert abs(decision.value - 0.25) < TOL and abs(decision.distance - 0.5) < TOL
    assert decision.cutoff == pytest.approx(0.36)


def test_matcher_cannot_decrypt(owner, matcher):
    blob = owner.encrypt(np.ones(8), "cosine")
    ct, _ = matcher.backend.load_ciphertext(blob)
    with pytest.raises(SecretKeyRequiredError, match="public bundle"):
        matcher.backend.decrypt(ct)


def test_matcher_refuses_the_secret_bundle(owner):
    with pytest.raises(WrongKindError, match="never the secret bundle"):
        Matcher(owner.backend.export_secret_bundle())


def test_key_owner_refuses_the_public_bundle(owner):
    with pytest.raises(WrongKindError, match="secret bundle"):
        KeyOwner.load(owner.public_bundle())


def test_mixed_metrics_are_refused(owner, matcher):
    with pytest.raises(DimensionError, match="different metrics"):
        matcher.distance(owner.encrypt(np.ones(8), "cosine"), owner.encrypt(np.ones(8), "euclidean"))


def test_mixed_lengths_are_refused(owner, matcher):
    with pytest.raises(DimensionError, match="lengths differ"):
        matcher.distance(owner.encrypt(np.ones(8), "cosine"), owner.encrypt(np.ones(9), "cosine"))


def test_ciphertext_of_another_key_owner_is_refused(owners, backend_name):
    stranger = KeyOwner.generate(backend_name, rotation_steps=[1])
    matcher = Matcher(owners[backend_name].public_bundle())
    with pytest.raises(KeyMismatchError, match=stranger.key_id):
        matcher.distance(stranger.encrypt(np.ones(8), "cosine"), owners[backend_name].encrypt(np.ones(8), "cosine"))


def test_save_writes_secret_bundle_owner_only(owner, tmp_path):
    secret, public = owner.save(tmp_path / "keys")
    assert stat.S_IMODE(os.stat(secret).st_mode) == 0o600
    restored = KeyOwner.load(tmp_path / "keys")
    assert restored.key_id == owner.key_id
    assert Matcher(public).key_id == owner.key_id


def test_cross_backend_distances_and_decisions_agree(owners):
    rng = np.random.default_rng(7)
    pairs = [(rng.normal(size=128) * 0.1, rng.normal(size=128) * 0.1) for _ in range(5)]
    pairs.append((pairs[0][0], pairs[0][0] + 0.001))
    for metric, threshold in (("cosine", 0.9), ("euclidean", 1.6)):
        values = {}
        for name, owner in owners.items():
            m = Matcher(owner.public_bundle())
            values[name] = [
                owner.decide(m.distance(owner.encrypt(a, metric), owner.encrypt(b, metric)), threshold, metric)
                for a, b in pairs
            ]
        for t, p in zip(values["tenseal"], values["pyfhel"]):
            assert abs(t.value - p.value) < 2 * TOL
            assert t.same_person == p.same_person


def test_blob_from_one_backend_names_both_backends_when_loaded_by_the_other(owners):
    blob = owners["tenseal"].encrypt(np.ones(8), "cosine")
    with pytest.raises(BackendMismatchError, match="'tenseal'.*'pyfhel'"):
        Matcher(owners["pyfhel"].public_bundle()).distance(blob, blob)
    bundle = owners["pyfhel"].public_bundle()
    from cipherface_tenseal import TenSEALBackend

    with pytest.raises(BackendMismatchError, match="'pyfhel'.*'tenseal'"):
        TenSEALBackend.load_bundle(bundle)
