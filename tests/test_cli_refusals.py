"""The command line refuses instead of guessing: a clear message, a documented exit code,
no traceback, nothing lost."""

import json
import os
import re
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

EXIT_ERROR, EXIT_INTERRUPTED = 2, 130


def cli(*args):
    return [sys.executable, "-m", "cipherface", *map(str, args)]


def run(*args, env=None):
    return subprocess.run(
        cli(*args),
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
    )


def refused(proc, message, code=EXIT_ERROR):
    assert proc.returncode == code, (proc.returncode, proc.stderr)
    assert message in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr
    return proc


@pytest.fixture(scope="module")
def keys(tmp_path_factory):
    out = tmp_path_factory.mktemp("keys") / "k"
    assert run("keygen", "--backend", "tenseal", "--max-dim", 128, "--out", out).returncode == 0
    return out


@pytest.fixture(scope="module")
def gallery(tmp_path_factory):
    folder = tmp_path_factory.mktemp("gallery")
    vectors = np.random.default_rng(1).normal(size=(3, 128)) * 0.05
    np.save(folder / "v.npy", vectors)
    (folder / "names.txt").write_text("a\nb\nc\n")
    g = folder / "g.db"
    proc = run(
        "enroll", "--gallery", g, "--backend", "tenseal", "--npy", folder / "v.npy", "--names", folder / "names.txt"
    )
    assert proc.returncode == 0, proc.stderr
    np.save(folder / "probe.npy", vectors[1])
    return g


def test_keygen_never_overwrites_keys_without_force(keys):
    before = (keys / "secret.cfk").read_bytes()
    refused(run("keygen", "--out", keys), "already exists")
    assert (keys / "secret.cfk").read_bytes() == before
    assert run("keygen", "--out", keys, "--force", "--max-dim", 128).returncode == 0
    assert (keys / "secret.cfk").read_bytes() != before


def test_keygen_refuses_conflicting_or_impossible_options(tmp_path):
    refused(run("keygen", "--out", tmp_path / "a", "--preset", "n8192-s128", "--security", "256"), "conflicts")
    refused(run("keygen", "--out", tmp_path / "b", "--max-dim", 0), "--max-dim")
    refused(run("keygen", "--out", tmp_path / "c", "--max-dim", 100000), "slots")
    assert not (tmp_path / "a").exists()


@pytest.mark.parametrize(
    ("flag", "value", "made"), [("--metric", "euclidean", "cosine"), ("--backend", "pyfhel", "tenseal")]
)
def test_enroll_refuses_a_flag_the_existing_gallery_would_ignore(gallery, flag, value, made):
    folder = gallery.parent
    proc = run("enroll", "--gallery", gallery, flag, value, "--name", "d", "--npy", folder / "probe.npy")
    refused(proc, f"{flag} {value} conflicts with gallery {gallery}, which uses {made}")
    assert json.loads(run("gallery", "info", gallery, "--json").stdout)["identities"] == 3


def test_an_environment_backend_that_conflicts_is_refused_too(gallery):
    folder = gallery.parent
    proc = run(
        "enroll",
        "--gallery",
        gallery,
        "--name",
        "d",
        "--npy",
        folder / "probe.npy",
        env={"CIPHERFACE_BACKEND": "pyfhel"},
    )
    refused(proc, "--backend pyfhel conflicts")


@pytest.mark.parametrize(("option", "value"), [("--top-k", -3), ("--top-k", 0), ("--workers", 0), ("--threshold", -1)])
def test_identify_validates_its_numbers(gallery, option, value):
    refused(run("identify", "--gallery", gallery, "--npy", gallery.parent / "probe.npy", option, value), option)


def test_identify_answers_with_valid_numbers(gallery):
    out = json.loads(
        run("identify", "--gallery", gallery, "--npy", gallery.parent / "probe.npy", "--top-k", 2, "--json").stdout
    )
    assert out["identity"] == "b" and len(out["candidates"]) == 2


def test_a_npy_of_strings_is_a_clear_error(keys, gallery, tmp_path):
    np.save(tmp_path / "s.npy", np.array(["a", "b"]))
    refused(
        run("distance", "--key", keys, tmp_path / "s.npy", tmp_path / "s.npy"), "not a readable .npy array of numbers"
    )
    refused(run("identify", "--gallery", gallery, "--npy", tmp_path / "s.npy"), "not a readable .npy array of numbers")
    proc = run("enroll", "--gallery", gallery, "--name", "x", "--npy", tmp_path / "s.npy")
    refused(proc, "not a readable .npy array of numbers")


def test_a_file_that_is_no_gallery_says_so(tmp_path):
    (tmp_path / "notes.txt").write_text("not a database, just text\n" * 100)
    np.save(tmp_path / "x.npy", np.ones(128))
    refused(
        run("identify", "--gallery", tmp_path / "notes.txt", "--npy", tmp_path / "x.npy"), "is not a cipherface gallery"
    )
    refused(run("gallery", "list", tmp_path / "notes.txt"), "is not a cipherface gallery")


def test_a_key_folder_with_only_the_public_bundle_says_what_is_missing(keys, tmp_path):
    public_only = tmp_path / "pub"
    public_only.mkdir()
    (public_only / "public.cfk").write_bytes((keys / "public.cfk").read_bytes())
    np.save(tmp_path / "a.npy", np.ones(128))
    proc = run("distance", "--key", public_only, tmp_path / "a.npy", tmp_path / "a.npy")
    refused(proc, "holds only public.cfk (the matcher's half), no secret.cfk")


def test_verify_refuses_a_backend_other_than_the_keys(keys, faces):
    proc = run("verify", faces / "img1.jpg", faces / "img2.jpg", "--key", keys, "--backend", "pyfhel")
    refused(proc, "--backend pyfhel conflicts with the key in")


def test_a_forged_result_exits_with_the_integrity_code(tmp_path, keys):
    """What `distance` prints for a result it cannot trust: exit 3, no decision."""
    script = f"""
import numpy as np
from cipherface import KeyOwner, Matcher, envelope
owner = KeyOwner.load({str(keys)!r})
m = Matcher(owner.public_bundle())
meta = envelope.decode(owner.encrypt(np.ones(128), "cosine")).meta
forged = m.backend.dump_ciphertext(m.backend.encrypt(np.zeros(8)), kind=envelope.RESULT,
    meta={{"metric": "cosine", "dim": 128, "nonces": [meta["nonce"], meta["nonce"]]}})
owner.decide(forged, 0.07, "cosine")
"""
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert "IntegrityError" in proc.stderr and "canary" in proc.stderr


def wait_for(proc, pattern, timeout=300):
    """Read the child's stderr until ``pattern`` (a regex) matches it (a progress bar), then return what was read."""
    seen, start = "", time.monotonic()
    while not re.search(pattern, seen):
        chunk = os.read(proc.stderr.fileno(), 4096).decode(errors="replace")
        if not chunk or time.monotonic() - start > timeout:
            raise AssertionError(f"never saw {pattern!r}: {seen[-2000:]}")
        seen += chunk
    return seen


#: a tqdm bar past its first item, whatever its rate display (photo/s, or s/photo on a busy machine)
PAST_FIRST = r"\| *[1-9][0-9]*/[0-9]+ \["


def test_ctrl_c_during_evaluate_stops_with_130_and_blames_no_photo(faces, tmp_path):
    """The reported reproduction: exit 0, "39/40 pairs", and a photo blamed for having no face."""
    proc = subprocess.Popen(
        cli("evaluate", "--pairs", faces / "pairs.csv", "--images", faces, "--out", tmp_path / "ev"),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    seen = wait_for(proc, r"embedding photos:[^\n]*?" + PAST_FIRST)  # the first photos are done: the detector is busy
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    seen += err.decode(errors="replace")
    assert proc.returncode == EXIT_INTERRUPTED, seen[-2000:]
    assert seen.rstrip().endswith("interrupted") and "Traceback" not in seen
    assert b"pairs" not in out and not (tmp_path / "ev" / "summary.json").exists()


def test_ctrl_c_during_enrolment_keeps_every_committed_identity(tmp_path):
    n = 20_000
    np.save(tmp_path / "v.npy", np.random.default_rng(2).normal(size=(n, 128)) * 0.05)
    (tmp_path / "names.txt").write_text("".join(f"p{i}\n" for i in range(n)))
    g = tmp_path / "g.db"
    proc = subprocess.Popen(
        cli("enroll", "--gallery", g, "--npy", tmp_path / "v.npy", "--names", tmp_path / "names.txt"),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    wait_for(proc, r"enrolling:[^\n]*?\| *[4-9][0-9]{3,}/")  # at least one block committed
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == EXIT_INTERRUPTED and b"Traceback" not in err
    info = json.loads(run("gallery", "info", g, "--json").stdout)
    assert info["identities"] % 4088 == 0 and 4088 <= info["identities"] < n  # blocks of 4,096 slots less 8 canaries
    listed = json.loads(run("gallery", "list", g, "--json").stdout)
    assert sum(listed.values()) == info["identities"]


def test_distance_refuses_an_embedding_whose_result_would_wrap(keys, tmp_path):
    """The reported reproduction: scaled by 3000, d² = 1.05e9 printed SAME person with exit 0."""
    rng = np.random.default_rng(3)
    a = rng.normal(size=128) * 0.05
    np.save(tmp_path / "a.npy", a * 3000)
    np.save(tmp_path / "b.npy", (a + rng.normal(size=128) * 0.05) * 3000)
    proc = run("distance", "--key", keys, "--metric", "euclidean", tmp_path / "a.npy", tmp_path / "b.npy")
    refused(proc, "too large for euclidean")
    assert "SAME" not in proc.stdout
