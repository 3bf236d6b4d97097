"""The Paillier plugin through the user's paths: 1:1 on the shared photos and the packed gallery
equal plaintext, what the matcher receives, and the command line's refusal without consent."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from cipherface import KeyOwner, Matcher
from cipherface.capabilities import PROBE_IN_CLEAR, protocol_for
from cipherface.errors import CipherfaceError, DisclosureError, IntegrityError, MissingCapabilityError
from cipherface.identification import Identifier
from cipherface.plugins import get_backend
from cipherface.testing.photos import a_few_pairs, faces_dir

FACES = faces_dir(__file__)


@pytest.fixture(scope="module")
def owner():
    return KeyOwner.generate("paillier")


@pytest.fixture(scope="module")
def matcher(owner):
    return Matcher(owner.public_bundle())


@pytest.fixture(scope="module")
def photos():
    return a_few_pairs(__file__)


def test_registered_as_its_own_distribution_under_the_gpl():
    from importlib.metadata import distribution

    cls = get_backend("paillier")
    assert cls.__module__.startswith("cipherface_paillier") and PROBE_IN_CLEAR in cls.capabilities
    meta = distribution("cipherface-paillier").metadata
    assert "GPL-3.0" in meta["License"]
    core = Path(__import__("cipherface").__file__).parent
    assert not [
        p for p in core.rglob("*.py") if "cipherface_paillier" in p.read_text() or "import phe" in p.read_text()
    ]


@pytest.mark.parametrize("metric", ["cosine", "euclidean"])
def test_decisions_on_the_shared_pairs_equal_plaintext(owner, matcher, photos, metric):
    pairs, emb = photos
    plain = protocol_for(get_backend("tenseal").generate(rotation_steps=[1]), metric)
    threshold = {"cosine": 0.07, "euclidean": 0.6}[metric]
    encrypted = {n: owner.encrypt(e, metric) for n, e in emb.items()}
    agree = 0
    for r in pairs:
        want = plain.plaintext(plain.prepare(emb[r["image_a"]]), plain.prepare(emb[r["image_b"]]))
        decision = owner.decide(
            matcher.distance(encrypted[r["image_a"]], owner.encrypt(emb[r["image_b"]], metric, probe=True)),
            threshold,
            metric,
        )
        assert decision.value == pytest.approx(want, abs=1e-6)
        agree += decision.same_person == plain.decide(want, threshold)
    assert agree == len(pairs)


def test_the_matcher_receives_the_probe_in_the_clear_and_nothing_else(owner, matcher, photos):
    """What the capability declares is what happens: the probe blob holds the prepared embedding
    (for cosine, the probe row −b̂: the normalised embedding up to its sign)."""
    _, emb = photos
    e = next(iter(emb.values()))
    probe = owner.encrypt(e, "cosine", probe=True)
    ct, _ = matcher.backend.load_ciphertext(probe)
    assert ct.clear
    seen = np.array([0 if x is None else x for x in ct.items[:128]], dtype=float) / 2**ct.scale_bits
    assert np.allclose(-seen, e / np.linalg.norm(e), atol=1e-8)
    reference, _ = matcher.backend.load_ciphertext(owner.encrypt(e, "cosine"))
    assert not reference.clear


def test_two_encrypted_operands_are_refused_naming_the_reason(owner, matcher, photos):
    _, emb = photos
    a, b = list(emb.values())[:2]
    with pytest.raises(CipherfaceError, match="in the clear"):
        matcher.distance(owner.encrypt(a, "cosine"), owner.encrypt(b, "cosine"))


def test_a_result_in_the_clear_is_refused(owner, matcher, photos):
    _, emb = photos
    a, b = list(emb.values())[:2]
    forged = matcher.distance(owner.encrypt(a, "cosine", probe=True), owner.encrypt(b, "cosine", probe=True))
    with pytest.raises(IntegrityError):
        owner.decide(forged, 0.07, "cosine")


def test_the_packed_gallery_identifies_as_plaintext(tmp_path):
    rng = np.random.default_rng(7)
    people = rng.normal(size=(12, 16))
    with Identifier.open(tmp_path / "g.db", tmp_path / "keys", create=True, backend="paillier", dim=16) as ident:
        ident.enroll([f"p{i}" for i in range(len(people))], list(people), progress=False)
        for i in (0, 5, 11):
            probe = people[i] + rng.normal(scale=0.05, size=16)
            got = ident.identify(probe, top_k=3, threshold=0.1)
            unit = people / np.linalg.norm(people, axis=1, keepdims=True)
            dist = 1 - unit @ (probe / np.linalg.norm(probe))
            order = np.argsort(dist)[:3]
            assert [c.name for c in got.candidates] == [f"p{j}" for j in order]
            assert [c.distance for c in got.candidates] == pytest.approx(dist[order], abs=1e-6)
            assert got.candidates[0].accepted == (dist[order[0]] <= 0.1)
        assert ident.verify()["blocks"] >= 1


def test_a_backend_without_products_or_clear_probes_is_refused_naming_the_capability():
    class Bare:
        name, capabilities = "bare", frozenset({"approximate"})

    with pytest.raises(MissingCapabilityError, match="ct-multiply"):
        protocol_for(Bare(), "cosine")


def cli(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "cipherface", *args], capture_output=True, text=True, cwd=cwd)


def test_the_command_line_refuses_it_without_consent_and_runs_it_with(tmp_path):
    a, b = FACES / "img1.jpg", FACES / "img10.jpg"
    refused = cli("verify", str(a), str(b), "--backend", "paillier")
    assert refused.returncode == 2
    assert "--matcher-sees-probe" in refused.stderr and "in the clear" in refused.stderr
    keys = cli("keygen", "--backend", "paillier", "--out", str(tmp_path / "k"))
    assert keys.returncode == 2 and "--matcher-sees-probe" in keys.stderr
    assert not (tmp_path / "k" / "secret.cfk").exists()
    ok = cli("--matcher-sees-probe", "verify", str(a), str(b), "--backend", "paillier", "--json")
    assert ok.returncode == 0, ok.stderr
    out = json.loads(ok.stdout)
    assert out["backend"] == "paillier" and out["verified"] is True


def test_the_python_api_makes_the_choice_by_naming_the_backend():
    from cipherface.capabilities import enforce_disclosures

    enforce_disclosures([])
    try:
        with pytest.raises(DisclosureError, match="matcher-sees-probe"):
            KeyOwner.generate("paillier")
    finally:
        enforce_disclosures(None)
