"""1:N identification on the packed encrypted gallery."""

import os
import signal
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import numpy as np
import pytest

from cipherface import KeyOwner
from cipherface.errors import BackendMismatchError, GalleryError, KeyMismatchError
from cipherface.evaluation import read_pairs
from cipherface.gallery import EncryptedGallery
from cipherface.gallery.packing import decrypt_block, encrypt_probe
from cipherface.identification import Identifier


def unit_vectors(rng, n, d=128):
    x = rng.normal(size=(n, d))
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def people(faces):
    """Photo -> person label, from the same-person pairs (connected components)."""
    parent = {}

    def find(a):
        parent.setdefault(a, a)
        while parent[a] != a:
            a = parent[a]
        return a

    for p in read_pairs(faces / "pairs.csv"):
        find(p.image_a), find(p.image_b)
        if p.same_person:
            parent[find(p.image_a)] = find(p.image_b)
    return {photo: find(photo) for photo in parent}


def photo_split(embedded, faces, synthetic: int, seed: int) -> dict:
    """One photo per person of the shared photos enrolled with ``synthetic`` random identities (norm
    0.5), the other photos as probes: names, vectors, probes, and every photo's embedding."""
    label = people(faces)
    enrolled, probes = {}, []
    for photo in sorted(embedded):
        (probes.append(photo) if label[photo] in enrolled else enrolled.setdefault(label[photo], photo))
    rows = unit_vectors(np.random.default_rng(seed), synthetic) * 0.5
    names = [f"synthetic-{i}" for i in range(len(rows))] + list(enrolled)
    vectors = np.array(list(rows) + [embedded[p] for p in enrolled.values()])
    return {"names": names, "vectors": vectors, "probes": probes, "emb": embedded}


def plaintext_top1(metric, gallery_names, gallery_matrix, probe, threshold):
    """The plaintext model's answer, computed independently with numpy."""
    if metric == "cosine":
        g = gallery_matrix / np.linalg.norm(gallery_matrix, axis=1, keepdims=True)
        values = 1 - g @ (probe / np.linalg.norm(probe))
        cutoff = threshold
    else:
        values = ((gallery_matrix - probe) ** 2).sum(axis=1)
        cutoff = threshold**2
    best = int(np.argmin(values))
    return gallery_names[best], bool(values[best] <= cutoff)


@pytest.mark.parametrize(("backend", "metric"), [("tenseal", "cosine"), ("pyfhel", "euclidean")])
def test_10k_gallery_top1_and_decision_equal_plaintext(tmp_path, gallery_at, faces, pair_embeddings, backend, metric):
    _, embeddings = pair_embeddings
    who = people(faces)
    rng = np.random.default_rng(6)
    synthetic = unit_vectors(rng, 10_000 - 13) * 0.5  # Dlib embeddings have norms of about 0.5
    enrolled_photo = {}
    for photo in sorted(embeddings):
        enrolled_photo.setdefault(who[photo], photo)
    names = [f"synthetic-{i}" for i in range(len(synthetic))] + list(enrolled_photo)
    vectors = list(synthetic) + [embeddings[photo] for photo in enrolled_photo.values()]
    threshold = {"cosine": 0.07, "euclidean": 0.6}[metric]
    with Identifier.open(gallery_at, tmp_path / "keys", create=True, backend=backend, metric=metric) as ident:
        ident.enroll(names, vectors, progress=False)
        assert ident.gallery.count() == len(names) >= 10_000
        others = [photo for photo in sorted(embeddings) if photo not in enrolled_photo.values()]
        probes = [(photo, embeddings[photo]) for photo in others[::2]]  # every other photo not enrolled
        probes += [(f"synthetic-{i}", synthetic[i] + rng.normal(size=128) * 0.01) for i in range(0, 9000, 2250)]
        probes += [(None, v) for v in unit_vectors(rng, 3) * 0.5]
        identified = 0
        matrix = np.array(vectors)
        for label, probe in probes:
            got = ident.identify(probe, top_k=1, threshold=threshold)
            want_name, want_accept = plaintext_top1(metric, names, matrix, probe, threshold)
            assert (got.candidates[0].name, got.candidates[0].accepted) == (want_name, want_accept), label
            if label in who and want_accept:
                assert want_name == who[label]  # the right person, whenever the plaintext model accepts
                identified += 1
        assert identified >= 0.8 * sum(1 for label, _ in probes if label in who)


@pytest.fixture
def small(tmp_path, gallery_at, backend_name):
    rng = np.random.default_rng(3)
    vectors = unit_vectors(rng, 40)
    ident = Identifier.open(gallery_at, tmp_path / "keys", create=True, backend=backend_name)
    ident.enroll([f"p{i}" for i in range(40)], list(vectors), progress=False)
    yield ident, vectors
    ident.close()


def test_remove_zeroes_the_slot_and_frees_it_for_reuse(small):
    ident, vectors = small
    [(_, block, slot)] = ident.gallery.store.locate(ident.ids_of("p7"))
    assert ident.remove("p7") == 1
    assert ident.gallery.count() == 39 and "p7" not in ident.names()
    columns = decrypt_block(ident.owner.backend, ident.gallery.store.read_block(block))
    assert np.abs(columns[:, slot]).max() < 5e-5  # zero, plus one encryption's noise (last prime: 2^26)
    [(_, block8, slot8)] = ident.gallery.store.locate(ident.ids_of("p8"))
    assert block8 == block
    np.testing.assert_allclose(columns[:, slot8], vectors[8], atol=5e-5)  # last prime: on a 2^-14 grid
    assert ident.identify(vectors[7], top_k=1).candidates[0].name != "p7"
    ident.enroll(["newcomer"], [vectors[7]], progress=False)
    assert ident.gallery.store.locate(ident.ids_of("newcomer"))[0][1:] == (block, slot)
    assert ident.identify(vectors[7], top_k=1).identity == "newcomer"


def test_removing_an_unknown_name_is_a_clear_error(small):
    ident, _ = small
    with pytest.raises(GalleryError, match="'nobody' is not enrolled"):
        ident.remove("nobody")


def test_parallel_scan_equals_single_process_scan(small):
    ident, vectors = small
    probe = encrypt_probe(ident.owner.backend, ident.protocol, vectors[3])  # one probe: the same noise
    one = ident.identify_encrypted(*probe, top_k=5, threshold=0.07)
    two = ident.identify_encrypted(*probe, top_k=5, threshold=0.07, workers=2)
    assert [c.name for c in one.candidates] == [c.name for c in two.candidates]
    np.testing.assert_allclose([c.value for c in one.candidates], [c.value for c in two.candidates], atol=1e-9)


def test_gallery_opened_with_another_key_or_backend_is_refused(small, tmp_path):
    ident, _ = small
    path = ident.gallery.store.source
    stranger = KeyOwner.generate(ident.owner.backend.name, rotation_steps=[1])
    with pytest.raises(KeyMismatchError, match="encrypted under key"):
        EncryptedGallery.open(path, key_id=stranger.key_id)
    other = "pyfhel" if ident.owner.backend.name == "tenseal" else "tenseal"
    with pytest.raises(BackendMismatchError, match=f"not '{other}'"):
        EncryptedGallery.open(path, backend=other)
    stranger.save(tmp_path / "stranger")
    with pytest.raises(KeyMismatchError, match="encrypted under key"):
        Identifier.open(path, tmp_path / "stranger")


def test_a_non_gallery_file_is_a_clear_error(tmp_path):
    (tmp_path / "x.db").write_bytes(b"hello")
    with pytest.raises(GalleryError, match="not a cipherface gallery"):
        EncryptedGallery.open(tmp_path / "x.db")
    with pytest.raises(GalleryError, match="no gallery at"):
        EncryptedGallery.open(tmp_path / "missing.db")


def test_a_missing_postgresql_gallery_or_server_is_a_clear_error(postgres_url):
    with pytest.raises(GalleryError, match="no gallery named 'missing'"):
        EncryptedGallery.open(f"{postgres_url}#missing")
    with pytest.raises(GalleryError, match="named after '#'"):
        EncryptedGallery.open(postgres_url)
    with pytest.raises(GalleryError, match="cannot connect to PostgreSQL at postgresql://u:\\*\\*\\*@127.0.0.1:1/db"):
        EncryptedGallery.open("postgresql://u:secret@127.0.0.1:1/db#g")


def test_readers_see_the_old_or_the_new_state_during_enrolment(tmp_path, gallery_at):
    rng = np.random.default_rng(4)
    with Identifier.open(gallery_at, tmp_path / "keys", create=True) as ident:
        ident.enroll(["a"] * 10, list(unit_vectors(rng, 10)), progress=False)
        seen, stop = set(), threading.Event()

        def read():
            reader = EncryptedGallery.open(gallery_at)
            while not stop.is_set():
                with reader.store.snapshot():
                    n = reader.count()
                    blocks = reader.store.block_ids()
                    complete = all(len(reader.store.read_block(b)) == reader.width for b in blocks)
                seen.add((n, len(blocks), complete))
            reader.close()

        thread = threading.Thread(target=read)
        thread.start()
        ident.enroll(["b"] * 5000, list(unit_vectors(rng, 5000)), progress=False)
        stop.set()
        thread.join()
    # one transaction per block (4,096 slots less 8 canaries): 4,078 more filling block 0, then 922 in block 1
    assert seen <= {(10, 1, True), (4088, 1, True), (5010, 2, True)}, seen
    assert (10, 1, True) in seen


def killed_while(tmp_path, gallery_at, stage, hook):
    """A process enrolling 100 of "first", then killed inside ``hook`` of its second enrolment."""
    script = textwrap.dedent(f"""
        import time
        import numpy as np
        from cipherface.identification import Identifier
        rng = np.random.default_rng(5)
        x = rng.normal(size=(600, 128))
        with Identifier.open({str(gallery_at)!r}, {str(tmp_path / "keys")!r}, create=True) as ident:
            ident.enroll(["first"] * 100, list(x[:100]), progress=False)
            print("committed", flush=True)
            target = {hook}
            original = getattr(target, {stage!r})

            def stalled(*args, **kwargs):
                print("stalled", flush=True)
                time.sleep(60)

            setattr(target, {stage!r}, stalled)
            ident.enroll(["second"] * 500, list(x[100:]), progress=False)
    """)
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "committed"
    assert proc.stdout.readline().strip() == "stalled"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()


def test_a_process_killed_during_enrolment_leaves_the_last_commit_and_no_orphans(tmp_path, gallery_at):
    killed_while(tmp_path, gallery_at, "write_seal", "ident.gallery.store")  # inside the gallery's transaction
    with Identifier.open(gallery_at, tmp_path / "keys") as ident:
        assert ident.gallery.count() == 100
        assert ident.names() == {"first": 100}
        assert ident.directory.pending_names(ident.gallery.gallery_id) == 0  # the 500 pending names were dropped
        assert ident.identify(np.random.default_rng(5).normal(size=(600, 128))[3], top_k=1).identity == "first"


def test_a_process_killed_after_the_gallery_committed_is_completed_on_open(tmp_path, gallery_at):
    killed_while(tmp_path, gallery_at, "end", "ident.directory")  # the gallery committed, the directory not yet
    x = np.random.default_rng(5).normal(size=(600, 128))
    with Identifier.open(gallery_at, tmp_path / "keys") as ident:
        assert ident.gallery.count() == 600
        assert ident.names() == {"first": 100, "second": 500}
        assert ident.directory.pending_names(ident.gallery.gallery_id) == 0
        assert ident.identify(x[300], top_k=1).identity == "second"
        assert ident.remove("second") == 500


def test_cli_enroll_identify_info_list_remove(tmp_path, faces):
    def run(*args):
        proc = subprocess.run([sys.executable, "-m", "cipherface", *args], capture_output=True, text=True)
        assert proc.returncode == 0, f"cipherface {' '.join(args)} exited {proc.returncode}: {proc.stderr}"
        return proc

    import json
    import stat

    g = str(tmp_path / "g.db")
    made = json.loads(run("enroll", "--gallery", g, "--name", "alice", str(faces / "img1.jpg"), "--json").stdout)
    run("enroll", "--gallery", g, "--name", "bob", str(faces / "img3.jpg"), "--json")
    # the key owner's folder is not beside the matcher's gallery: under $CIPHERFACE_KEYS, owner-only
    keys = Path(made["key_folder"])
    assert keys.parent == Path(os.environ["CIPHERFACE_KEYS"]) and keys.name.startswith("g-")
    assert sorted(p.name for p in tmp_path.iterdir() if not p.name.startswith("g.db")) == []
    assert stat.S_IMODE(keys.stat().st_mode) == 0o700
    assert stat.S_IMODE((keys / "directory.db").stat().st_mode) == 0o600

    out = json.loads(run("identify", "--gallery", g, str(faces / "img2.jpg"), "--json").stdout)
    assert out["identity"] == "alice" and out["gallery_size"] == 2
    info = json.loads(run("gallery", "info", g, "--json").stdout)
    assert info["identities"] == 2 and info["metric"] == "cosine" and "opaque" in info["labels"]
    assert "alice\t1" in run("gallery", "list", g).stdout
    run("gallery", "remove", g, "--name", "alice")
    out = json.loads(run("identify", "--gallery", g, str(faces / "img2.jpg"), "--json").stdout)
    assert out["identity"] is None and out["candidates"][0]["name"] == "bob"


def test_cli_on_a_postgresql_gallery(tmp_path, faces, postgres_url):
    """`--gallery postgresql://...#NAME`: the same commands on a gallery in PostgreSQL."""
    import json

    def run(*args):
        proc = subprocess.run([sys.executable, "-m", "cipherface", *args], capture_output=True, text=True)
        assert proc.returncode == 0, f"cipherface {' '.join(args)} exited {proc.returncode}: {proc.stderr}"
        return proc

    g = f"{postgres_url}#cli-staff"
    made = json.loads(run("enroll", "--gallery", g, "--name", "alice", str(faces / "img1.jpg"), "--json").stdout)
    assert Path(made["key_folder"]).name.startswith("cli-staff-")
    run("enroll", "--gallery", g, "--name", "bob", str(faces / "img3.jpg"))
    out = json.loads(run("identify", "--gallery", g, str(faces / "img2.jpg"), "--json").stdout)
    assert out["identity"] == "alice" and out["gallery_size"] == 2
    info = json.loads(run("gallery", "info", g, "--json").stdout)
    assert info["identities"] == 2 and info["path"].endswith("#cli-staff") and info["file_bytes"] > 0
    run("gallery", "remove", g, "--name", "alice")
    assert "alice" not in run("gallery", "list", g).stdout


def test_a_scan_in_bounded_memory_streams_the_other_blocks_and_answers_the_same(tmp_path, gallery_at):
    """At most ``resident`` blocks stay deserialised per scanning process; the others are read,
    scored and dropped at every scan, from the same snapshot: the same answers, commits included."""
    rng = np.random.default_rng(41)
    vectors = unit_vectors(rng, 3 * 4088 + 50, d=16)  # four blocks
    with Identifier.open(gallery_at, tmp_path / "keys", create=True, dim=16) as ident:
        ident.enroll([f"p{i}" for i in range(len(vectors))], list(vectors), progress=False)
        probes = [encrypt_probe(ident.owner.backend, ident.protocol, vectors[i]) for i in (5, 4100, 9000, 12300)]

        def answers(workers=1):
            found = [ident.identify_encrypted(*p, top_k=2, threshold=0.07, workers=workers) for p in probes]
            return [[(c.name, round(c.distance, 9)) for c in f.candidates] for f in found]

        everything = answers()
        assert ident.gallery._cache.held() == [0, 1, 2, 3]
        ident.gallery.bound_memory(1)
        assert answers() == everything and ident.gallery._cache.held() == [0]
        assert answers(workers=2) == everything  # each scan process keeps one block of its share
        ident.remove("p9000")  # a commit rewriting a streamed block: read as it is now
        assert [a[0][0] for a in answers()] == ["p5", "p4100", everything[2][1][0], "p12300"]
        ident.gallery.bound_memory(0)
        assert [a[0][0] for a in answers()] == ["p5", "p4100", everything[2][1][0], "p12300"]
        assert ident.gallery._cache.held() == []
