"""Results that could wrap around are never computed; results no genuine computation can
produce are never decided on (forged, relabelled, or made under another key)."""

import sqlite3

import numpy as np
import pytest

from cipherface import KeyOwner, Matcher, envelope
from cipherface.errors import CipherfaceError, IntegrityError, RangeError
from cipherface.identification import Identifier
from cipherface.integrity import CANARY_SLOTS


def pair(rng, dim=128):
    a = rng.normal(size=dim) * 0.05
    return a, a + rng.normal(size=dim) * 0.002


def test_an_embedding_whose_distance_could_wrap_is_refused_with_the_bound_and_norm(owner):
    """The reported reproduction: scaled by 3000, d² = 1.05e9 decrypted to -1.28e7 and said SAME."""
    rng = np.random.default_rng(1)
    a = rng.normal(size=128) * 3000
    with pytest.raises(RangeError, match=r"embedding norm .* results could reach .* at most ±"):
        owner.encrypt(a, "euclidean")
    owner.encrypt(a, "cosine")  # cosine normalises first: any norm is fine


def test_the_largest_allowed_embeddings_still_compute_exactly(owner, matcher):
    limit = owner.backend.params.result_limit
    big = np.sqrt(limit) / 2 * 0.999
    a, b = np.zeros(128), np.zeros(128)
    a[0], b[0] = big, -big
    d = owner.decide(matcher.distance(owner.encrypt(a, "euclidean"), owner.encrypt(b, "euclidean")), 1.0, "euclidean")
    assert abs(d.value - 4 * big * big) <= 1e-4 * 4 * big * big and not d.same_person


def forged_result(owner, matcher, metric, values, rng):
    """What anyone holding only the public bundle can make: an encryption of chosen values,
    dressed as a result for two genuine ciphertexts."""
    a, b = pair(rng)
    meta_a = envelope.decode(owner.encrypt(a, metric)).meta
    meta_b = envelope.decode(owner.encrypt(b, metric)).meta
    ct = matcher.backend.encrypt(values)
    meta = {"metric": metric, "dim": 128, "nonces": [meta_a["nonce"], meta_b["nonce"]]}
    return matcher.backend.dump_ciphertext(ct, kind=envelope.RESULT, meta=meta)


@pytest.mark.parametrize("metric", ["cosine", "euclidean"])
@pytest.mark.parametrize("forgery", ["zeros", "same_everywhere", "plausible"])
def test_a_result_forged_from_the_public_bundle_is_refused(owner, matcher, metric, forgery):
    rng = np.random.default_rng(2)
    values = {
        "zeros": np.zeros(256),
        "same_everywhere": np.full(256, 0.01),
        "plausible": np.concatenate([[0.01], rng.uniform(0, 2, size=255)]),
    }[forgery]
    with pytest.raises(IntegrityError, match="canary"):
        owner.decide(forged_result(owner, matcher, metric, values, rng), 0.5, metric)


def test_relabelling_the_result_metric_cannot_flip_a_decision(owner, matcher):
    """The reported reproduction: euclidean relabelled cosine turned False into True."""
    rng = np.random.default_rng(3)
    a, b = rng.normal(size=128) * 0.05, rng.normal(size=128) * 0.05
    blob = matcher.distance(owner.encrypt(a, "euclidean"), owner.encrypt(b, "euclidean"))
    assert owner.decide(blob, 0.6, "euclidean").same_person is False
    env = envelope.decode(blob)
    env.meta["metric"] = "cosine"
    with pytest.raises(IntegrityError, match="asked for 'euclidean'"):
        owner.decide(env.to_bytes(), 0.6, "euclidean")
    with pytest.raises(IntegrityError, match="canary"):
        owner.decide(env.to_bytes(), 0.6, "cosine")  # and a key owner who asked for cosine gets no answer either


@pytest.mark.parametrize(("field", "value"), [("dim", 64), ("dim", 4096), ("dim", "128"), ("nonces", None)])
def test_an_edited_result_header_is_refused(owner, matcher, field, value):
    rng = np.random.default_rng(4)
    a, b = pair(rng)
    env = envelope.decode(matcher.distance(owner.encrypt(a, "cosine"), owner.encrypt(b, "cosine")))
    env.meta[field] = value
    with pytest.raises(IntegrityError):
        owner.decide(env.to_bytes(), 0.07, "cosine")


def test_a_result_made_under_another_key_relabelled_with_this_key_id_is_refused(owner, backend_name):
    rng = np.random.default_rng(5)
    stranger = KeyOwner.generate(backend_name, rotation_steps=[1, 2, 4, 8, 16, 32, 64])
    a, b = pair(rng)
    blob = Matcher(stranger.public_bundle()).distance(stranger.encrypt(a, "cosine"), stranger.encrypt(b, "cosine"))
    env = envelope.decode(blob)
    env.key_id = owner.key_id
    with pytest.raises(IntegrityError):
        owner.decide(env.to_bytes(), 0.07, "cosine")


@pytest.mark.parametrize("threshold", [-0.1, float("nan"), float("inf")])
def test_an_impossible_threshold_is_refused(owner, matcher, threshold):
    rng = np.random.default_rng(6)
    a, b = pair(rng)
    blob = matcher.distance(owner.encrypt(a, "cosine"), owner.encrypt(b, "cosine"))
    with pytest.raises(CipherfaceError, match="threshold"):
        owner.decide(blob, threshold, "cosine")


def test_canaries_need_room_behind_the_embedding(owner):
    with pytest.raises(CipherfaceError, match="no room for the integrity canaries"):
        owner.encrypt(np.ones(owner.backend.slot_count - CANARY_SLOTS), "cosine")


# ------------------------------------------------------------------------------- 1:N
@pytest.fixture
def gallery(tmp_path, backend_name):
    rng = np.random.default_rng(7)
    vectors = rng.normal(size=(30, 128)) * 0.05
    ident = Identifier.open(tmp_path / "g.db", tmp_path / "keys", create=True, backend=backend_name, metric="euclidean")
    ident.enroll([f"p{i}" for i in range(30)], list(vectors), progress=False)
    yield ident, vectors
    ident.close()


def test_enrolling_or_probing_with_a_wrapping_embedding_is_refused(gallery):
    ident, vectors = gallery
    with pytest.raises(RangeError, match="norm"):
        ident.enroll(["huge"], [vectors[0] * 1e5], progress=False)
    with pytest.raises(RangeError, match="norm"):
        ident.identify(vectors[0] * 1e5)
    assert ident.gallery.count() == 30


def test_a_gallery_whose_public_bundle_was_swapped_refuses_to_identify(gallery, backend_name):
    """The reported reproduction: another key's bundle relabelled with this key id named a random
    person at distance about -7e7. The key owner's manifest tag now refuses the gallery at open."""
    ident, vectors = gallery
    assert ident.identify(vectors[4], top_k=1).identity == "p4"
    stranger = KeyOwner.generate(backend_name, ident.owner.backend.params)
    env = envelope.decode(stranger.public_bundle())
    env.key_id = ident.owner.key_id
    path = ident.gallery.store.path
    ident.close()
    with sqlite3.connect(path) as conn:
        conn.execute("UPDATE bundle SET data = ?", (env.to_bytes(),))
    with pytest.raises(IntegrityError, match="public bundle are not those the key owner made"):
        Identifier.open(path, path.parent / "keys")


@pytest.mark.parametrize("metric", ["cosine", "euclidean", "cosine-quantised", "euclidean-in-clear"])
def test_a_batch_of_gallery_rows_is_each_row_as_prepared_alone_and_refused_alike(metric):
    """Enrolment prepares and checks all its embeddings in one pass: the rows must be what
    ``check`` and ``gallery_row`` give one by one, and a batch holding one embedding that could
    wrap around (or is empty, or not finite) is refused as that embedding alone would be."""
    from cipherface.plugins import get_protocol

    name, _, variant = metric.partition("-")
    protocol = get_protocol(name)
    protocol = {"quantised": protocol.quantised(), "in": protocol.probe_in_clear()}.get(variant, protocol)
    rng = np.random.default_rng(3)
    batch = rng.normal(size=(50, 128)) * (1.0 if name == "cosine" else 0.05)
    limit = 16.0 if not protocol.quant_scale else 2.0**40
    rows = protocol.gallery_rows(batch, limit)
    np.testing.assert_allclose(rows, [protocol.gallery_row(e) for e in batch], rtol=1e-14, atol=1e-15)
    for embedding in (batch[7] * 1e5, np.zeros(128), np.full(128, np.nan)):  # wraps, empty, not finite
        alone = None
        try:
            protocol.check(embedding, limit)
        except CipherfaceError as exc:
            alone = type(exc)
        edited = batch.copy()
        edited[7] = embedding
        if alone is None:
            protocol.gallery_rows(edited, limit)
        else:
            with pytest.raises(alone):
                protocol.gallery_rows(edited, limit)
