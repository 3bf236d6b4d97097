"""Gallery layouts: blocks at the last prime (the default on TenSEAL) against blocks at two primes.

Real TenSEAL keys, real Dlib embeddings of the shared photos, real SQLite galleries: a last-prime
gallery must name the same person with the same decision as plaintext and as a two-prime gallery
of the same people, in about half the bytes; `gallery migrate` converts a two-prime gallery
(interrupted: the half-converted gallery still answers as plaintext; run again: it finishes);
an embedding too large for the last prime's smaller limit is refused and nothing is lost.
"""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from test_gallery import photo_split, plaintext_top1, unit_vectors

from cipherface.errors import RangeError
from cipherface.gallery import layout as layouts
from cipherface.gallery.custody import Custody
from cipherface.gallery.packing import decrypt_block
from cipherface.identification import Identifier

THRESHOLD = {"cosine": 0.07, "euclidean": 0.6}


@pytest.fixture(scope="module")
def photos(pair_embeddings, faces):
    """One photo per person enrolled (with 4,200 synthetic identities: two blocks), the rest probes."""
    return photo_split(pair_embeddings[1], faces, 4200, 31)


def make(where, photos, metric, layout):
    ident = Identifier.open(
        where / "g.db", where / "keys", create=True, backend="tenseal", metric=metric, layout=layout
    )
    ident.enroll(photos["names"], list(photos["vectors"]), progress=False)
    return ident


def stored_bytes(ident):
    blocks = ident.gallery.read_blocks(sorted(ident.gallery.state().seals))
    return sum(len(blob) for stored in blocks.values() for blob in stored.blobs)


def answers(ident, photos, metric, probes):
    out = []
    for photo in probes:
        got = ident.identify(photos["emb"][photo], top_k=3, threshold=THRESHOLD[metric])
        want = plaintext_top1(metric, photos["names"], photos["vectors"], photos["emb"][photo], THRESHOLD[metric])
        assert (got.candidates[0].name, got.candidates[0].accepted) == want, photo
        out.append(got)
    return out


@pytest.mark.parametrize("metric", ["cosine", "euclidean"])
def test_a_last_prime_gallery_answers_as_plaintext_and_as_two_primes_in_half_the_bytes(tmp_path, photos, metric):
    last = make(tmp_path / "last", photos, metric, None)  # the default on TenSEAL
    two = make(tmp_path / "two", photos, metric, layouts.TWO_PRIMES)
    try:
        assert last.layout == layouts.LAST_PRIME and last.block_layouts() == {layouts.LAST_PRIME: 2}
        assert two.layout == layouts.TWO_PRIMES and two.block_layouts() == {layouts.TWO_PRIMES: 2}
        probes = photos["probes"][::2]
        for a, b in zip(answers(last, photos, metric, probes), answers(two, photos, metric, probes)):
            assert [c.name for c in a.candidates] == [c.name for c in b.candidates]
            # the last prime's templates are rounded to a 2^-14 grid: Euclidean distances move by ~1e-4
            assert np.allclose([c.distance for c in a.candidates], [c.distance for c in b.candidates], atol=3e-4)
        size_last, size_two = stored_bytes(last), stored_bytes(two)
        # one 60-bit prime against 60 + 40 bits (SEAL's zstd packs the 40-bit residues): 0.57
        assert size_last < 0.6 * size_two, (size_last, size_two)
        assert last.verify() == two.verify()
    finally:
        last.close()
        two.close()


def test_migrate_converts_a_two_prime_gallery_and_answers_as_plaintext_throughout(tmp_path, photos, monkeypatch):
    metric = "cosine"
    ident = make(tmp_path, photos, metric, layouts.TWO_PRIMES)
    probes = photos["probes"][:4]
    try:
        before = answers(ident, photos, metric, probes)
        rewrite, calls = Custody.rewrite, []

        def interrupted(self, *args, **kwargs):  # Ctrl-C during the second block's re-encryption
            calls.append(1)
            if len(calls) == 2:
                raise KeyboardInterrupt
            return rewrite(self, *args, **kwargs)

        monkeypatch.setattr(Custody, "rewrite", interrupted)
        with pytest.raises(KeyboardInterrupt):
            ident.migrate(layouts.LAST_PRIME)
        monkeypatch.setattr(Custody, "rewrite", rewrite)
        assert ident.block_layouts() == {layouts.LAST_PRIME: 1, layouts.TWO_PRIMES: 1}  # half-converted ...
        during = answers(ident, photos, metric, probes)  # ... and still plaintext's answers
        assert ident.migrate(layouts.LAST_PRIME) == {"blocks": 2, "rewritten": 1, "layout": layouts.LAST_PRIME}
        assert ident.block_layouts() == {layouts.LAST_PRIME: 2}
        assert ident.migrate(layouts.LAST_PRIME)["rewritten"] == 0
        after = answers(ident, photos, metric, probes)
        ident.verify()
        ident.enroll(["late"], [photos["emb"][probes[0]] * 0.9], progress=False)
        assert ident.block_layouts() == {layouts.LAST_PRIME: 2}
    finally:
        ident.close()
    for a, b, c in zip(before, during, after):
        assert [x.name for x in a.candidates] == [x.name for x in b.candidates] == [x.name for x in c.candidates]
        assert np.allclose([x.distance for x in a.candidates], [x.distance for x in c.candidates], atol=1e-4)
    with Identifier.open(tmp_path / "g.db", tmp_path / "keys") as reopened:  # the key owner's record survives
        assert reopened.layout == layouts.LAST_PRIME
        assert reopened.identify(photos["emb"][probes[0]], top_k=1).candidates[0].name == "late"


def test_an_embedding_too_large_for_the_last_prime_is_refused_and_nothing_is_lost(tmp_path, photos):
    rng = np.random.default_rng(5)
    big = unit_vectors(rng, 1)[0] * 2.5  # Euclidean results up to 4·6.25 = 25 > ±16 at the last prime
    with Identifier.open(tmp_path / "a.db", tmp_path / "ka", create=True, backend="tenseal", metric="euclidean") as a:
        assert a.layout == layouts.LAST_PRIME
        a.enroll(["x"], [photos["vectors"][0]], progress=False)
        with pytest.raises(RangeError, match="too large"):
            a.enroll(["big"], [big], progress=False)
        with pytest.raises(RangeError, match="too large"):
            a.identify(big)
        assert a.names() == {"x": 1}
    with Identifier.open(
        tmp_path / "b.db", tmp_path / "kb", create=True, backend="tenseal", metric="euclidean", layout=1
    ) as b:
        b.enroll(["x", "big"], [photos["vectors"][0], big], progress=False)
        with pytest.raises(RangeError, match="block 0"):
            b.migrate(layouts.LAST_PRIME)
        assert b.block_layouts() == {layouts.TWO_PRIMES: 1} and b.names() == {"big": 1, "x": 1}
        b.migrate(layouts.TWO_PRIMES)  # back: the larger limit again
        assert b.identify(big, top_k=1, threshold=0.6).candidates[0].name == "big"


def test_the_command_line_migrates_and_hints_at_migration(tmp_path, photos):
    npy = tmp_path / "e.npy"
    np.save(npy, photos["vectors"][-3:])
    (tmp_path / "names.txt").write_text("a\nb\nc\n")
    with Identifier.open(tmp_path / "g.db", tmp_path / "keys", create=True, backend="tenseal", layout=1) as ident:
        ident.enroll(["a", "b", "c"], list(photos["vectors"][-3:]), progress=False)
    probe = tmp_path / "p.npy"
    np.save(probe, photos["vectors"][-2])

    def run(*args):
        return subprocess.run([sys.executable, "-m", "cipherface", *args], capture_output=True, text=True)

    old = run("identify", "--gallery", str(tmp_path / "g.db"), "--key", str(tmp_path / "keys"), "--npy", str(probe))
    assert old.returncode == 0, old.stderr
    assert "gallery migrate" in old.stderr and "two primes" in old.stderr
    done = run("gallery", "migrate", str(tmp_path / "g.db"), "--key", str(tmp_path / "keys"))
    assert done.returncode == 0 and "1 of 1 block(s) rewritten" in done.stdout, done.stderr
    new = run("identify", "--gallery", str(tmp_path / "g.db"), "--key", str(tmp_path / "keys"), "--npy", str(probe))
    assert new.returncode == 0 and "gallery migrate" not in new.stderr, new.stderr
    assert old.stdout.split()[:2] == new.stdout.split()[:2]


def test_rewriting_a_last_prime_block_many_times_does_not_move_its_identities(tmp_path, photos):
    """Every enrolment or removal rewrites its block (decrypt, re-encrypt): at the last prime the
    values are kept on a grid, so the noise of one encryption never adds to the next."""
    vectors = photos["vectors"][-2:]
    with Identifier.open(tmp_path / "g.db", tmp_path / "keys", create=True, backend="tenseal") as ident:
        ident.enroll(["first", "second"], list(vectors), progress=False)
        [(_, block, slot)] = ident.gallery.store.locate(ident.ids_of("first"))
        for i in range(25):  # 50 rewrites of the same block
            ident.enroll([f"x{i}"], [vectors[1]], progress=False)
            ident.remove(f"x{i}")
        grid = ident.owner.backend.params.last_prime_grid
        stored = decrypt_block(ident.owner.backend, ident.gallery.store.read_block(block))[:, slot]
        kept = layouts.stored_values(layouts.LAST_PRIME, ident.owner.backend, ident.protocol.gallery_row(vectors[0]))
        assert np.max(np.abs(stored - kept)) < grid / 4  # one encryption's noise, not fifty
        assert np.array_equal(np.round(stored / grid) * grid, kept)
        assert np.max(np.abs(kept - ident.protocol.gallery_row(vectors[0]))) <= grid / 2
        assert ident.identify(vectors[0], top_k=1).candidates[0].name == "first"
