"""Tampering with the gallery file or the matcher's answers: refused with IntegrityError, naming
what was changed (never the wrong person, never a silent miss)."""

import shutil

import numpy as np
import pytest
from stores import STORES, copy_gallery, edit, gallery_location, query

from cipherface import KeyOwner, envelope
from cipherface.errors import IntegrityError
from cipherface.gallery.packing import STORAGE_DEPTH
from cipherface.identification import Identifier

DIM = 16
PEOPLE = 4100  # two blocks of 4,088 identities


def unit(rng, n):
    x = rng.normal(size=(n, DIM))
    return x / np.linalg.norm(x, axis=1, keepdims=True)


@pytest.fixture(scope="module", params=STORES)
def pristine(request, tmp_path_factory):
    """A two-block gallery and its key folder, made once per store; tests tamper with copies."""
    folder = tmp_path_factory.mktemp("pristine")
    at = gallery_location(request, request.param, folder, "pristine")
    vectors = unit(np.random.default_rng(21), PEOPLE)
    with Identifier.open(at, folder / "keys", create=True, backend="tenseal", dim=DIM) as ident:
        ident.enroll([f"p{i}" for i in range(PEOPLE)], list(vectors), progress=False)
    return folder, vectors, at, request.param


@pytest.fixture
def copy(request, pristine, tmp_path):
    """A copy of the pristine gallery (a file or a PostgreSQL gallery) and its key folder."""
    folder, vectors, source, store = pristine
    at = gallery_location(request, store, tmp_path)
    copy_gallery(source, at)
    shutil.copytree(folder / "keys", tmp_path / "keys")
    return tmp_path, vectors, at


def identify(folder, at, probe):
    with Identifier.open(at, folder / "keys") as ident:
        return ident.identify(probe, top_k=1, threshold=0.07)


def test_the_untouched_copy_identifies_everyone_checked(copy):
    folder, vectors, at = copy
    for i in (0, 4095, 4099):
        assert identify(folder, at, vectors[i]).identity == f"p{i}"


def test_swapped_blocks_are_refused(copy):
    folder, vectors, at = copy
    edit(
        at,
        ("UPDATE blocks SET block = -1 WHERE block = 0", ()),
        ("UPDATE blocks SET block = 0 WHERE block = 1", ()),
        ("UPDATE blocks SET block = 1 WHERE block = -1", ()),
    )
    with pytest.raises(IntegrityError, match="block [01]"):
        identify(folder, at, vectors[0])


def test_swapped_blocks_with_their_seals_are_refused(copy):
    folder, vectors, at = copy
    swap = [(f"UPDATE {table} SET block = -1 WHERE block = 0", ()) for table in ("blocks", "seals", "identities")] + [
        (f"UPDATE {table} SET block = 0 WHERE block = 1", ()) for table in ("blocks", "seals", "identities")
    ]
    swap += [(f"UPDATE {table} SET block = 1 WHERE block = -1", ()) for table in ("blocks", "seals", "identities")]
    edit(at, *swap)
    with pytest.raises(IntegrityError, match="was made for block [01]"):
        identify(folder, at, vectors[0])


@pytest.mark.parametrize("tamper", ["swap", "delete", "move"])
def test_edited_slot_rows_are_refused(copy, tamper):
    folder, vectors, at = copy
    (a, sa), (b, sb) = query(at, "SELECT id, slot FROM identities WHERE block = 0 ORDER BY slot LIMIT 2")
    [(free,)] = query(at, "SELECT MAX(slot) + 1 FROM identities WHERE block = 1")
    statements = {
        "swap": [
            ("UPDATE identities SET slot = -1 WHERE id = ?", (a,)),
            ("UPDATE identities SET slot = ? WHERE id = ?", (sa, b)),
            ("UPDATE identities SET slot = ? WHERE id = ?", (sb, a)),
        ],
        "delete": [("DELETE FROM identities WHERE id = ?", (a,))],
        "move": [("UPDATE identities SET block = 1, slot = ? WHERE id = ?", (free, a))],
    }[tamper]
    edit(at, *statements)
    with pytest.raises(IntegrityError, match="slot rows are not those the key owner sealed"):
        identify(folder, at, vectors[0])


def test_a_replayed_old_block_is_refused(request, pristine, copy, tmp_path):
    folder, vectors, at = copy
    old = gallery_location(request, pristine[3], tmp_path, "old")
    copy_gallery(at, old)  # the matcher keeps a copy of the gallery
    with Identifier.open(at, folder / "keys") as ident:
        ident.remove("p5")
        assert ident.identify(vectors[5], top_k=1, threshold=0.07).identity is None
        ident.gallery.store.checkpoint()
    copy_gallery(old, at)  # ... and serves it again after the removal
    with pytest.raises(IntegrityError, match="block 0 is stale: version 1, but the key owner last wrote version 2"):
        identify(folder, at, vectors[5])


def test_a_deleted_block_is_refused(copy):
    folder, vectors, at = copy
    edit(
        at,
        *[(f"DELETE FROM {table} WHERE block = 1", ()) for table in ("blocks", "seals", "identities")],
    )
    with pytest.raises(IntegrityError, match="block 1 .* is missing from the gallery"):
        identify(folder, at, vectors[0])


def test_a_public_bundle_from_another_key_is_refused(copy):
    folder, vectors, at = copy
    stranger = KeyOwner.generate("tenseal", rotation_steps=[1])
    with Identifier.open(at, folder / "keys") as ident:
        key_id = ident.gallery.key_id
    edit(at, ("UPDATE bundle SET data = ?", (stranger.public_bundle(),)))
    with pytest.raises(IntegrityError, match="public bundle are not those the key owner made"):
        identify(folder, at, vectors[0])
    # the same bundle, with the gallery's key id written back into its header: still refused
    env = envelope.decode(stranger.public_bundle())
    env.key_id = key_id
    edit(at, ("UPDATE bundle SET data = ?", (env.to_bytes(),)))
    with pytest.raises(IntegrityError, match="public bundle are not those the key owner made"):
        identify(folder, at, vectors[0])


class LyingMatcher:
    """Wraps the gallery's scan and changes what it returns."""

    def __init__(self, ident, lie):
        self.scan, self.lie, self.ident = ident.gallery.scan, lie, ident
        ident.gallery.scan = self

    def __call__(self, probe, workers=1):
        generation, results = self.scan(probe, workers=workers)
        return generation, self.lie(self.ident, results)


def relabel(blob, block):
    env = envelope.decode(blob)
    env.meta = {**env.meta, "block": block}
    return env.to_bytes()


def forged_zero(ident, block):
    """What a matcher can make from the public key alone: an encryption of 0 labelled as a block's result."""
    backend = ident.gallery.backend
    ct = backend.encrypt(np.zeros(backend.slot_count), depth=STORAGE_DEPTH - 1)
    return backend.dump_ciphertext(ct, kind=envelope.RESULT, meta={"block": block})


LIES = {
    "results relabelled": (lambda ident, r: [relabel(r[1], 0), relabel(r[0], 1)], "canaries score other"),
    "block dropped": (lambda ident, r: r[:1], "no scores for block 1"),
    "block returned twice": (lambda ident, r: [r[0], r[0]], "block 0 twice"),
    "forged encryption of 0": (lambda ident, r: [forged_zero(ident, 0), r[1]], "canaries score other"),
    "result from another query": (None, "canaries score other"),
}


@pytest.mark.parametrize("lie", list(LIES))
def test_a_lying_matcher_is_caught(copy, lie):
    folder, vectors, at = copy
    change, message = LIES[lie]
    with Identifier.open(at, folder / "keys") as ident:
        if change is None:  # replay the scores of an earlier query for another probe
            earlier = []
            LyingMatcher(ident, lambda ident, r: earlier.extend(r) or r)
            ident.identify(vectors[7], top_k=1, threshold=0.07)
            change = lambda ident, r: earlier  # noqa: E731
            ident.gallery.scan = ident.gallery.scan.scan
        LyingMatcher(ident, change)
        with pytest.raises(IntegrityError, match=message):
            ident.identify(vectors[0], top_k=1, threshold=0.07)


def test_canaries_are_re_randomised_when_a_block_is_rewritten(copy):
    folder, _, at = copy
    with Identifier.open(at, folder / "keys") as ident:
        before = ident.custody.check_state(ident.gallery.state())[0]
        ident.remove("p1")
        after = ident.custody.check_state(ident.gallery.state())[0]
        assert after.version == before.version + 1 and after.nonce != before.nonce
        assert after.canaries == before.canaries  # hidden among the slot rows, which do not move
        blocks = ident.gallery.state().slots[0]
        assert all(s in blocks for s in after.canaries)
        assert ident.gallery.count() == PEOPLE - 1
        assert "p1" not in ident.names() and len(ident.names()) == PEOPLE - 1


def test_gallery_verify_checks_every_block_and_names_a_tampered_one(copy):
    import json
    import subprocess
    import sys

    folder, _, at = copy

    def verify():
        cmd = [sys.executable, "-m", "cipherface", "gallery", "verify", at, "--key", folder / "keys"]
        return subprocess.run([*map(str, cmd), "--json"], capture_output=True, text=True)

    ok = verify()
    assert ok.returncode == 0, ok.stderr
    assert json.loads(ok.stdout) == {"blocks": 2, "identities": PEOPLE}
    with Identifier.open(at, folder / "keys") as ident:
        other = ident.gallery.store.read_block(0)[5]
    edit(at, ("UPDATE blocks SET data = ? WHERE block = 1 AND component = 5", (other,)))
    bad = verify()
    assert bad.returncode == 3 and "block 1's ciphertexts are not those the key owner sealed" in bad.stderr


def test_a_state_read_just_before_another_writers_commit_is_read_again_not_called_stale(copy):
    """The race the concurrent runs found: a query read generation g, then a writer committed and
    recorded version v+1 before the query checked its blocks against the key owner's record."""
    from cipherface.errors import StaleScanError

    folder, vectors, at = copy
    with (
        Identifier.open(at, folder / "keys") as reader,
        Identifier.open(at, folder / "keys") as writer,
    ):
        before = reader.gallery.state()
        writer.remove("p3")  # commits block 0 version 2 and records it
        with pytest.raises(StaleScanError):  # not IntegrityError: the gallery has moved on
            reader._versions(before)
        assert reader.identify(vectors[4], top_k=1, threshold=0.07).identity == "p4"
        assert reader.identify(vectors[3], top_k=1, threshold=0.07).identity is None
