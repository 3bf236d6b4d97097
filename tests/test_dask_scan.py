"""The matcher's scan on a real Dask cluster (a scheduler and two worker processes on 127.0.0.1):
the answers are the local scan's, on both stores, and a worker killed during a query loses nothing."""

import os
import signal
import threading
import time

import numpy as np
import pytest

from cipherface.gallery.dask_scan import DaskScan
from cipherface.gallery.packing import decrypt_scores, encrypt_probe
from cipherface.identification import Identifier
from cipherface.testing.cluster import cluster

DIM = 64
PEOPLE = 3 * 4088 + 100  # four blocks: two per worker


def unit(rng, n):
    x = rng.normal(size=(n, DIM))
    return x / np.linalg.norm(x, axis=1, keepdims=True)


@pytest.fixture(scope="module")
def vectors():
    return unit(np.random.default_rng(31), PEOPLE)


@pytest.fixture
def enrolled(tmp_path, gallery_at, vectors):
    ident = Identifier.open(gallery_at, tmp_path / "keys", create=True, backend="tenseal", dim=DIM)
    ident.enroll([f"p{i}" for i in range(PEOPLE)], list(vectors), progress=False)
    yield ident
    ident.close()


def answers(ident, probes):
    """Top-3 names, distances and decisions for each encrypted probe (the same ciphertexts each time)."""
    out = []
    for probe, row, offset in probes:
        found = ident.identify_encrypted(probe, row, offset, top_k=3, threshold=0.07)
        out.append([(c.name, round(c.distance, 9), c.accepted) for c in found.candidates])
    return out


def scores(ident, scanned):
    """A scan's generation and its score blocks decrypted (the key owner's view), by block."""
    generation, blobs = scanned
    return generation, dict(decrypt_scores(ident.owner.backend, b) for b in blobs)


def test_two_dask_workers_answer_exactly_as_the_local_scan(enrolled, vectors):
    ident = enrolled
    rng = np.random.default_rng(32)
    picks = [0, 4087, 4088, 9000, PEOPLE - 1]
    noisy = [vectors[i] + rng.normal(size=DIM) * 0.01 for i in picks]
    probes = [encrypt_probe(ident.owner.backend, ident.protocol, v) for v in noisy]
    local = answers(ident, probes)
    assert [a[0][0] for a in local] == [f"p{i}" for i in picks]
    with cluster(2) as c:
        scanner = DaskScan(c.address)
        ident.gallery.use_scanner(scanner)
        assert answers(ident, probes) == local
        streaming = DaskScan(c.address, resident=0)  # nothing kept: every block read at every scan
        ident.gallery.use_scanner(streaming)
        assert answers(ident, probes) == local
        streaming.close()
        ident.gallery.use_scanner(scanner)
        ident.remove("p9000")  # a commit: the workers reread the rewritten block only
        ident.enroll(["late"], [vectors[9000]], progress=False)
        assert ident.identify(vectors[9000], top_k=1).identity == "late"
        c.add_worker()  # a third worker: the partitions are rebalanced at the next query
        c.wait_for(3)
        ident.gallery.use_scanner(scanner)
        assert ident.identify(vectors[4087], top_k=1).identity == "p4087"
        held = scanner.resident()  # each of the three holds its third of the blocks
        assert sorted(part for parts in held.values() for _, part in parts if part[1] == 3) == [(0, 3), (1, 3), (2, 3)]
        ident.gallery.use_scanner(None)
        scanner.close()


def test_a_worker_killed_during_a_query_still_gives_the_right_answer(tmp_path, vectors):
    with Identifier.open(tmp_path / "g.db", tmp_path / "keys", create=True, backend="tenseal", dim=DIM) as ident:
        ident.enroll([f"p{i}" for i in range(PEOPLE)], list(vectors), progress=False)
        probe = encrypt_probe(ident.owner.backend, ident.protocol, vectors[4100])
        want = scores(ident, ident.gallery.scan(probe[0]))  # the local scan's
        with cluster(2) as c:
            scanner = DaskScan(c.address)
            victim, survivor = c.workers[1], c.workers[0]
            addresses = c.wait_for(2)
            got = []
            query = threading.Thread(target=lambda: got.append(scanner.scan(ident.gallery.store.source, probe[0])))
            query.start()
            deadline = time.monotonic() + 60
            while not any(scanner.client.processing().values()) and time.monotonic() < deadline:
                time.sleep(0.005)
            assert any(scanner.client.processing().values()), "the query never reached the workers"
            os.kill(victim.pid, signal.SIGKILL)  # mid-query: its partition is in flight
            query.join(120)
            assert len(got) == 1 and got[0][0] == want[0]
            assert sorted(scores(ident, got[0])[1]) == sorted(want[1])  # every block, once
            for block, values in scores(ident, got[0])[1].items():
                np.testing.assert_allclose(values, want[1][block], atol=1e-6)
            # the survivor scanned the lost worker's blocks too, read from the store: the scheduler reran
            # the lost partition there, or (when the probe's only copy was lost) the query was resent
            assert scanner.workers() == [addresses[0]] or scanner.workers() == [addresses[1]]
            [held] = scanner.resident().values()
            parts = {part for _, part in held}
            assert {(0, 2), (1, 2)} <= parts or (0, 1) in parts, parts
            assert survivor.poll() is None
            ident.gallery.use_scanner(scanner)  # and the next query runs on the one worker left
            assert ident.identify_encrypted(*probe, top_k=1, threshold=0.07).identity == "p4100"
            ident.gallery.use_scanner(None)
            scanner.close()


def test_the_service_on_postgresql_and_dask_answers_the_photos_as_plaintext(
    tmp_path, postgres_url, pair_embeddings, faces
):
    """`cipherface serve --store postgresql://... --scan dask://...`: the key owner's commands are
    unchanged, the answers equal plaintext, the gallery and the tokens live in PostgreSQL."""
    from test_gallery import people, plaintext_top1
    from test_service import cli

    from cipherface.gallery.postgres_store import names
    from cipherface.service import RemoteMatcher
    from cipherface.service.process import running, serve_command

    _, embedded = pair_embeddings
    label, enrolled, probes = people(faces), {}, []
    for photo in sorted(embedded):
        (probes.append(photo) if label[photo] in enrolled.values() else enrolled.__setitem__(photo, label[photo]))
    data = tmp_path / "data"
    token = cli("serve", "token", "create", "--store", postgres_url, "--tenant", "acme").stdout.strip()
    with cluster(2) as c:
        command, url = serve_command(data, "--store", postgres_url, "--scan", c.address.replace("tcp", "dask"))
        with running(command, url), RemoteMatcher(url, token) as remote:
            with Identifier.open("photos", tmp_path / "keys", create=True, backend="tenseal", matcher=remote) as ident:
                ident.enroll(list(enrolled.values()), [embedded[p] for p in enrolled], progress=False)
                threshold = ident.default_threshold()
                matrix, who = np.array([embedded[p] for p in enrolled]), list(enrolled.values())
                for probe in probes[:8]:
                    found = ident.identify(embedded[probe], top_k=1, threshold=threshold)
                    top1, accepted = plaintext_top1("cosine", who, matrix, embedded[probe], threshold)
                    assert (found.candidates[0].name, found.identity is not None) == (top1, accepted), probe
            assert remote.galleries() == ["photos"] and names(postgres_url, "acme/") == ["acme/photos"]
            assert not list(data.rglob("*.db*"))  # galleries and tokens are in PostgreSQL
            remote.delete("photos")
            assert names(postgres_url, "acme/") == []
