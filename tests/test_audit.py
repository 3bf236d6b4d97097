"""`cipherface audit` on the shared photos: what the matcher reads is what the scheme declares, and
its success follows from it (a probe in the clear links queries as well as the key owner can)."""

import json
import subprocess
import sys

import pytest


def test_the_audit_measures_what_each_scheme_lets_the_matcher_see(faces):
    out = subprocess.run(
        [sys.executable, "-m", "cipherface", "audit", "--pairs", str(faces / "pairs.csv"), "--images", str(faces),
         "--backends", "tenseal,paillier,dcpe", "--limit", "40", "--json"],
        capture_output=True, text=True,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    rows = {r["backend"]: r for r in report["backends"]}
    ckks, phe, dcpe = rows["tenseal"], rows["paillier"], rows["dcpe"]
    assert ckks["visible"] == {"ref": False, "probe": False} and ckks["disclosures"] == []
    assert phe["visible"] == {"ref": False, "probe": True}
    assert phe["disclosures"] == ["the matcher sees every probe embedding in the clear"]
    # two queries in the clear: the matcher links them exactly as well as the key owner
    assert phe["matcher"]["linking_auc"] == pytest.approx(phe["key_owner"]["linking_auc"], abs=1e-12)
    # distance-preserving: the matcher reads both operands and computes the key owner's very values
    assert dcpe["visible"] == {"ref": True, "probe": True} and len(dcpe["disclosures"]) == 1
    assert dcpe["matcher"]["pairs_auc"] == pytest.approx(dcpe["key_owner"]["pairs_auc"], abs=1e-9)
    assert dcpe["matcher"]["linking_auc"] > 0.8  # near the plaintext model
    for r in (ckks, phe):  # the key owner's decisions on decrypted results separate the pairs
        assert r["key_owner"]["pairs_auc"] == pytest.approx(r["key_owner"]["linking_auc"], abs=1e-9)
        assert r["cost"]["reference_kb"] > 0 and r["cost"]["one_to_one_ms"] > 0


def test_an_unknown_backend_is_refused_by_name(faces):
    out = subprocess.run(
        [sys.executable, "-m", "cipherface", "audit", "--pairs", str(faces / "pairs.csv"), "--images", str(faces),
         "--backends", "nope"],
        capture_output=True, text=True,
    )  # fmt: skip
    assert out.returncode == 2 and "unknown backend(s) ['nope']" in out.stderr
