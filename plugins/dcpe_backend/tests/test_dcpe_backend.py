"""The DCPE plugin through the user's paths: on the shared photos its distances stay within the
approximation factor's bound of plaintext and its decisions mostly agree, the matcher computes the
same values from what it receives, the packed gallery ranks as plaintext on separated identities,
and the command line refuses it without consent."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from cipherface import KeyOwner, Matcher, envelope
from cipherface.capabilities import DISTANCE_PRESERVING, protocol_for
from cipherface.errors import DisclosureError, SecretKeyRequiredError
from cipherface.gallery import encrypt_probe
from cipherface.identification import Identifier
from cipherface.plugins import get_backend, get_protocol
from cipherface.testing.photos import a_few_pairs, faces_dir

FACES = faces_dir(__file__)


@pytest.fixture(scope="module")
def photos():
    return a_few_pairs(__file__)


def test_registered_as_its_own_distribution_under_the_agpl():
    from importlib.metadata import distribution

    cls = get_backend("dcpe")
    assert cls.__module__.startswith("cipherface_dcpe") and DISTANCE_PRESERVING in cls.capabilities
    assert "AGPL-3.0" in distribution("cipherface-dcpe").metadata["License"]
    core = Path(__import__("cipherface").__file__).parent
    assert not [p for p in core.rglob("*.py") if "cipherface_dcpe" in p.read_text() or "ironcore" in p.read_text()]


@pytest.mark.parametrize("preset", ["dcpe-0.5", "dcpe-1", "dcpe-2.5"])
def test_distances_on_the_shared_pairs_stay_within_the_factors_bound(photos, preset):
    """DCPE's guarantee with scale 1: each vector moves by at most β/4, so a Euclidean distance by
    at most β/2 (the key owner decides on the squared distance)."""
    pairs, emb = photos
    owner = KeyOwner.generate("dcpe", preset)
    matcher = Matcher(owner.public_bundle())
    beta = owner.backend.params.approximation_factor
    raw_errors, reported_errors = [], []
    for r in pairs:
        a, b = emb[r["image_a"]], emb[r["image_b"]]
        got = owner.decide(
            matcher.distance(owner.encrypt(a, "euclidean"), owner.encrypt(b, "euclidean")), 0.6, "euclidean"
        )
        raw = np.sqrt(got.value)  # between the encrypted vectors, as the matcher computes it
        assert abs(raw - np.linalg.norm(a - b)) <= beta / 2 + 1e-9, (r, raw, np.linalg.norm(a - b))
        raw_errors.append(abs(raw - np.linalg.norm(a - b)))
        reported_errors.append(abs(got.distance - np.linalg.norm(a - b)))
    # the noise adds twice its energy to every squared distance: the key owner reports without that bias
    assert np.mean(reported_errors) < np.mean(raw_errors)


def test_decisions_on_the_shared_pairs_mostly_equal_plaintext(photos):
    pairs, emb = photos
    owner = KeyOwner.generate("dcpe", "dcpe-0.5")  # measured on all 520 pairs: 98 % agree (docs/schemes.md)
    matcher = Matcher(owner.public_bundle())
    plain = get_protocol("cosine")
    agree = 0
    for r in pairs:
        want = plain.plaintext(plain.prepare(emb[r["image_a"]]), plain.prepare(emb[r["image_b"]]))
        blob_a, blob_b = owner.encrypt(emb[r["image_a"]], "cosine"), owner.encrypt(emb[r["image_b"]], "cosine")
        agree += owner.decide(matcher.distance(blob_a, blob_b), 0.07, "cosine").same_person == plain.decide(want, 0.07)
    assert agree >= len(pairs) - 3


def test_the_matcher_computes_the_key_owners_value_from_what_it_receives(photos):
    """The disclosure, shown: without any key the matcher reads the transformed embeddings (not the
    embeddings) and gets the very value the key owner decides on."""
    _, emb = photos
    owner = KeyOwner.generate("dcpe")
    matcher = Matcher(owner.public_bundle())
    a, b = list(emb.values())[:2]
    blob_a, blob_b = owner.encrypt(a, "cosine"), owner.encrypt(b, "cosine", probe=True)
    seen = [matcher.backend.visible(matcher.backend.load_ciphertext(x)[0])[:128] for x in (blob_a, blob_b)]
    assert all(np.linalg.norm(s - e / np.linalg.norm(e)) > 0.5 for s, e in zip(seen, (a, b)))  # shuffled, noisy
    value = owner.decrypt_result(matcher.distance(blob_a, blob_b), "cosine")
    assert 1 - seen[0] @ seen[1] == pytest.approx(value, abs=1e-9)
    # the bias the key owner corrects is no secret either: a function of the factor (ball of radius β/4)
    beta = owner.backend.params.approximation_factor
    assert owner.backend.transform_noise() == pytest.approx((beta / 4) ** 2, rel=0.05)
    with pytest.raises(SecretKeyRequiredError):
        matcher.backend.encrypt_vector(a)


def test_the_packed_gallery_ranks_separated_identities_as_plaintext(tmp_path):
    rng = np.random.default_rng(7)
    people = rng.normal(size=(12, 16))
    with Identifier.open(tmp_path / "g.db", tmp_path / "keys", create=True, backend="dcpe", dim=16) as ident:
        ident.enroll([f"p{i}" for i in range(len(people))], list(people), progress=False)
        unit = people / np.linalg.norm(people, axis=1, keepdims=True)
        for i in (0, 5, 11):
            probe = people[i] + rng.normal(scale=0.05, size=16)
            got = ident.identify(probe, top_k=3, threshold=0.3)
            dist = 1 - unit @ (probe / np.linalg.norm(probe))
            assert got.candidates[0].name == f"p{i}" == f"p{np.argmin(dist)}"
            assert got.candidates[0].accepted
            assert got.candidates[0].distance == pytest.approx(dist[i], abs=0.1)
            # the matcher alone: its scan's scores are in the clear, its slot map names the identity
            blobs, _, _ = encrypt_probe(ident.owner.backend, ident.protocol, probe)
            results, state = ident.gallery.scan_with_state(blobs)
            best = min(
                (score, state.slots[meta["block"]][slot])
                for ct, meta in (ident.gallery.backend.load_ciphertext(r, kind=envelope.RESULT) for r in results)
                for slot, score in enumerate(ident.gallery.backend.visible(ct))
                if slot in state.slots[meta["block"]]
            )
            assert best[1] == got.candidates[0].identity
        assert ident.verify()["blocks"] >= 1


def test_protocols_need_the_capability_by_name():
    class Bare:
        name, capabilities = "bare", frozenset({"approximate", "rotation"})

    from cipherface.errors import MissingCapabilityError

    with pytest.raises(MissingCapabilityError, match="ct-multiply"):
        protocol_for(Bare(), "cosine")


def cli(*args):
    return subprocess.run([sys.executable, "-m", "cipherface", *args], capture_output=True, text=True)


def test_the_command_line_refuses_it_without_consent_and_runs_it_with(tmp_path):
    a, b = FACES / "img1.jpg", FACES / "img10.jpg"
    refused = cli("verify", str(a), str(b), "--backend", "dcpe")
    assert refused.returncode == 2
    assert "--matcher-sees-distances" in refused.stderr and "approximate distances" in refused.stderr
    probe_only = cli("--matcher-sees-probe", "keygen", "--backend", "dcpe", "--out", str(tmp_path / "k"))
    assert probe_only.returncode == 2 and not (tmp_path / "k" / "secret.cfk").exists()
    ok = cli("--matcher-sees-distances", "verify", str(a), str(b), "--backend", "dcpe", "--json")
    assert ok.returncode == 0, ok.stderr
    out = json.loads(ok.stdout)
    assert out["backend"] == "dcpe" and isinstance(out["verified"], bool)


def test_the_python_api_makes_the_choice_by_naming_the_backend():
    from cipherface.capabilities import enforce_disclosures

    enforce_disclosures([])
    try:
        with pytest.raises(DisclosureError, match="matcher-sees-distances"):
            KeyOwner.generate("dcpe")
    finally:
        enforce_disclosures(None)


def test_the_key_owner_encrypts_inside_a_running_event_loop():
    """Alloy's API is async: a key owner inside a web handler's loop still gets its vectors."""
    import asyncio

    owner = KeyOwner.generate("dcpe")

    async def handler():
        return owner.encrypt(np.linspace(-1, 1, 128), "cosine")

    blob = asyncio.run(handler())
    assert Matcher(owner.public_bundle()).backend.load_ciphertext(blob)[1]["dim"] == 128
