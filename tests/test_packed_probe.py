"""The compact probe of 1:N identification: one packed ciphertext uploaded, expanded by the matcher.

Real TenSEAL keys, real Dlib embeddings of the shared photos, a real SQLite gallery: the packed
probe must name the same person with the same decision as plaintext (and as the probe uploaded
whole), at a fraction of the bytes; a key set without the expansion keys falls back to the whole
probe; a probe of another width is refused.
"""

from __future__ import annotations

import numpy as np
import pytest
from test_gallery import photo_split, plaintext_top1

from cipherface import KeyOwner
from cipherface.backend import power_of_two_steps
from cipherface.errors import DimensionError
from cipherface.gallery import decrypt_scores, encrypt_probe
from cipherface.identification import Identifier


@pytest.fixture(scope="module", params=["cosine", "euclidean"])
def photo_gallery(request, tmp_path_factory, pair_embeddings, faces):
    """One photo per person of the shared photos and 3,000 synthetic identities (one block), TenSEAL
    with its default keys (which hold the expansion's Galois keys); the other photos probe it."""
    metric = request.param
    split = photo_split(pair_embeddings[1], faces, 3000, 12)
    where = tmp_path_factory.mktemp(f"packed-{metric}")
    ident = Identifier.open(where / "g.db", where / "keys", create=True, backend="tenseal", metric=metric)
    ident.enroll(split["names"], list(split["vectors"]), progress=False)
    yield {"ident": ident, "metric": metric, **split}
    ident.close()


def test_the_packed_probe_names_the_same_people_as_plaintext_in_one_small_upload(photo_gallery):
    g = photo_gallery
    ident, metric = g["ident"], g["metric"]
    threshold = {"cosine": 0.07, "euclidean": 0.6}[metric]
    width = ident.gallery.width
    assert width == (128 if metric == "cosine" else 129)
    for photo in g["probes"][::3]:
        probe = g["emb"][photo]
        packed = encrypt_probe(ident.owner.backend, ident.protocol, probe)
        whole = encrypt_probe(ident.owner.backend, ident.protocol, probe, packed=False)
        assert len(packed[0]) == 1 and len(whole[0]) == width
        assert len(packed[0][0]) < 200_000, "one ciphertext, seeded"
        assert sum(map(len, whole[0])) > 50 * len(packed[0][0])
        got = ident.identify_encrypted(*packed, top_k=3, threshold=threshold)
        ref = ident.identify_encrypted(*whole, top_k=3, threshold=threshold)
        want = plaintext_top1(metric, g["names"], g["vectors"], probe, threshold)
        assert (got.candidates[0].name, got.candidates[0].accepted) == want, photo
        assert [c.name for c in got.candidates] == [c.name for c in ref.candidates], photo
        assert np.allclose([c.distance for c in got.candidates], [c.distance for c in ref.candidates], atol=1e-4)


def test_the_packed_probe_is_what_identify_sends_and_the_scan_expands(photo_gallery):
    ident = photo_gallery["ident"]
    sent = []
    scan = ident.gallery.scan
    ident.gallery.scan = lambda probe, workers=1: sent.append(len(probe)) or scan(probe, workers)
    try:
        ident.identify(photo_gallery["emb"][photo_gallery["probes"][0]], top_k=1)
        ident.identify(photo_gallery["emb"][photo_gallery["probes"][1]], top_k=1, workers=2)  # scan processes
    finally:
        del ident.gallery.scan
    assert sent == [1, 1]


def test_a_probe_of_another_width_is_refused(photo_gallery):
    ident = photo_gallery["ident"]
    backend = ident.owner.backend
    for wrong in (ident.gallery.width - 1, ident.gallery.width + 1):
        blob = backend.encrypt_packed_blob(np.full(wrong, 0.01), depth=1)
        with pytest.raises(DimensionError, match=f"holds {wrong} values, the gallery needs {ident.gallery.width}"):
            ident.gallery.scan([blob])
    packed, _, _ = encrypt_probe(backend, ident.protocol, photo_gallery["emb"][photo_gallery["probes"][0]])
    with pytest.raises(DimensionError, match="2 components"):
        ident.gallery.scan(packed * 2)


def test_a_key_set_without_the_expansion_keys_sends_the_whole_probe(tmp_path, pair_embeddings, faces):
    _, embedded = pair_embeddings
    photos = sorted(embedded)[:6]
    owner = KeyOwner.generate("tenseal", rotation_steps=power_of_two_steps(128))
    assert not owner.backend.can_expand(128)
    owner.save(tmp_path / "keys")
    with Identifier.open(tmp_path / "g.db", tmp_path / "keys", create=True) as ident:
        ident.enroll(photos[:4], [embedded[p] for p in photos[:4]], progress=False)
        probe, row, offset = encrypt_probe(ident.owner.backend, ident.protocol, embedded[photos[0]])
        assert len(probe) == 128
        got = ident.identify_encrypted(probe, row, offset, top_k=1, threshold=0.07)
        assert got.candidates[0].name == photos[0] and got.candidates[0].accepted


def test_keygen_for_128_values_holds_the_expansion_keys_within_the_bundle_limit():
    owner = KeyOwner.generate("tenseal", max_dim=128)
    assert owner.backend.can_expand(128) and owner.backend.can_expand(129)  # cosine and Euclidean rows
    assert len(owner.public_bundle()) < 64 * 2**20
    assert len(KeyOwner.generate("tenseal").public_bundle()) < 64 * 2**20  # every length: still under


def test_the_native_kernel_scores_blocks_exactly_as_seal_does(photo_gallery, monkeypatch):
    """The TenSEAL backend's compiled scan kernel against SEAL's own products on the same gallery
    and probe: the same score ciphertexts (decrypted: equal values)."""
    ident = photo_gallery["ident"]
    embedding = photo_gallery["emb"][photo_gallery["probes"][0]]
    probe = encrypt_probe(ident.owner.backend, ident.protocol, embedding)[0]
    ident.gallery.reload()
    _, native = ident.gallery.scan(probe)
    monkeypatch.setenv("CIPHERFACE_NATIVE_KERNEL", "0")  # SEAL's evaluator, product by product
    ident.gallery.reload()
    _, generic = ident.gallery.scan(probe)
    monkeypatch.delenv("CIPHERFACE_NATIVE_KERNEL")
    ident.gallery.reload()
    for a, b in zip(native, generic):
        assert np.array_equal(decrypt_scores(ident.owner.backend, a)[1], decrypt_scores(ident.owner.backend, b)[1])
