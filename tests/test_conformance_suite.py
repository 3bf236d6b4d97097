"""The conformance suite catches broken backends and names what broke."""

import dataclasses
import json
import re
import subprocess
import sys

import numpy as np
from cipherface_tenseal import TenSEALBackend

from cipherface.testing.runner import run_conformance


class LeakyPublicBundle(TenSEALBackend):
    """Broken on purpose: its public bundle keeps the secret key, in a part it declares public."""

    name = "leaky"
    public_parts = (*TenSEALBackend.public_parts, "backup")

    def _bundle_parts(self, secret):
        parts = super()._bundle_parts(secret)
        parts["backup"] = super()._bundle_parts(True)["secret_key"]
        return parts

    @classmethod
    def _from_parts(cls, params, key_id, rotation_steps, parts, secret):
        parts = {**parts, "secret_key": parts["backup"]}
        return super()._from_parts(params, key_id, rotation_steps, parts, True)


class NoisyDecrypt(TenSEALBackend):
    """Broken on purpose: decryption adds noise far above CKKS's own."""

    name = "noisy"

    def _decrypt(self, ct):
        values = np.asarray(super()._decrypt(ct))
        return values + np.random.default_rng(0).normal(scale=1e-3, size=values.size)


class SmallSpecialPrime(TenSEALBackend):
    """Broken on purpose: builds every chain with a 40-bit special prime, as the old n8192-s192 [60,40,40] was."""

    name = "small-special-prime"

    @classmethod
    def _generate(cls, params, key_id, rotation_steps):
        bits = (*params.coeff_mod_bit_sizes[:-1], 40)
        return super()._generate(dataclasses.replace(params, coeff_mod_bit_sizes=bits), key_id, rotation_steps)


def failed_tests(report, capability):
    return {f["test"].split("[")[0] for f in report["capabilities"][capability]["failures"]}


def test_suite_catches_a_public_bundle_that_keeps_the_secret_key():
    report = run_conformance(LeakyPublicBundle, keyword="public_bundle")
    assert not report["ok"]
    assert {
        "test_public_bundle_refuses_to_decrypt",
        "test_public_bundle_cannot_decrypt_even_bypassing_checks",
        "test_public_bundle_contains_no_secret_key_bytes",
    } <= failed_tests(report, "keys")
    messages = " ".join(f["message"] for f in report["capabilities"]["keys"]["failures"])
    assert "keys: " in messages and "secret" in messages


def test_suite_catches_a_noisy_decrypt_and_names_precision():
    report = run_conformance(NoisyDecrypt, keyword="round_trip or sum_slots")
    assert not report["ok"]
    assert "test_encrypt_decrypt_round_trip" in failed_tests(report, "precision")
    assert any(
        f["message"].startswith("AssertionError: precision: d=")
        for f in report["capabilities"]["precision"]["failures"]
    )


def test_suite_catches_a_special_prime_smaller_than_the_data_primes_on_every_preset():
    report = run_conformance(SmallSpecialPrime, keyword="preset_computes and (n8192 or n16384)")
    failures = report["capabilities"]["precision"]["failures"]
    assert not report["ok"] and len(failures) == 5
    for f in failures:
        assert f["message"].startswith("AssertionError: precision: preset n"), f["message"]
        assert "d=128" in f["message"] and "error" in f["message"]


def test_conformance_cli_fails_a_deliberately_bad_parameter_set_with_precision():
    def conformance(spec, *extra):
        args = [sys.executable, "-m", "cipherface", "conformance", "pyfhel", "--params", spec, *extra]
        return subprocess.run([*args, "-k", "extra_parameter_sets"], capture_output=True, text=True)

    proc = conformance("8192:60,40,40:40:192", "--json")
    report = json.loads(proc.stdout)
    assert proc.returncode == 1 and not report["ok"]
    (precision,) = report["capabilities"]["precision"]["failures"]
    # which cases exceed the tolerance depends on the key's noise (the random case fell below it once in
    # CI); every report names the set, the metric, the dimension and a failing case
    assert re.search(
        r"precision: parameter set 8192:60,40,40:40:192 \[60, 40, 40\]: euclidean d=128 \w+: error",
        precision["message"],
    )
    assert "cosine d=512 largest_spread: error" in precision["message"]
    (refused,) = report["capabilities"]["presets"]["failures"]
    assert "special (last) prime has 40 bits" in refused["message"]
    good = conformance("8192:56,40,56:40:192")
    assert good.returncode == 0, good.stdout


def test_a_correct_backend_passes_the_same_selection():
    report = run_conformance(TenSEALBackend, keyword="public_bundle or round_trip")
    assert report["ok"]
    assert report["capabilities"]["keys"]["passed"] >= 4


def test_example_plugin_is_discovered_and_passes_through_the_cli():
    listed = json.loads(
        subprocess.run(
            [sys.executable, "-m", "cipherface", "backends", "--json"], capture_output=True, text=True, check=True
        ).stdout
    )
    opcount = next(b for b in listed["backends"] if b["name"] == "opcount")
    assert opcount["plugin"] == "cipherface-opcount 0.1.0"
    proc = subprocess.run(
        [sys.executable, "-m", "cipherface", "conformance", "opcount", "--json", "-k", "not preset_computes"],
        capture_output=True,
        text=True,
    )
    report = json.loads(proc.stdout)
    assert proc.returncode == 0 and report["ok"]
    assert sum(c["passed"] for c in report["capabilities"].values()) >= 80


def test_conformance_cli_on_an_unknown_backend_is_a_clear_error():
    proc = subprocess.run([sys.executable, "-m", "cipherface", "conformance", "nope"], capture_output=True, text=True)
    assert proc.returncode == 2 and "installed backends:" in proc.stderr


def test_a_capability_the_backend_does_not_declare_is_skipped_with_its_name(tmp_path):
    import subprocess
    import sys

    (tmp_path / "test_norot.py").write_text(
        "import pytest\n"
        "from cipherface_tenseal import TenSEALBackend\n"
        "from cipherface.testing import BackendConformance\n"
        "class NoRotation(TenSEALBackend):\n"
        "    capabilities = TenSEALBackend.capabilities - {'rotation'}\n"
        "class TestNoRotation(BackendConformance):\n"
        "    @pytest.fixture(scope='class')\n"
        "    @classmethod\n"
        "    def backend_class(cls):\n"
        "        return NoRotation\n"
    )
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-rs",
            "-p",
            "no:cacheprovider",
            str(tmp_path / "test_norot.py"),
            "-k",
            "rotate or sum_slots or test_add or euclidean_matches",
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stdout[-2000:]
    assert "does not declare capability rotation" in proc.stdout
    assert " passed" in proc.stdout  # the tests of what it does declare still run
