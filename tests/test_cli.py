"""The command line as a user runs it (a real subprocess, real exit codes)."""

import json
import os
import stat
import subprocess
import sys

import numpy as np
import pytest


def run(*args, check=True, env=None):
    proc = subprocess.run(
        [sys.executable, "-m", "cipherface", *args],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"cipherface {' '.join(args)} exited {proc.returncode}: {proc.stderr}")
    return proc


def test_params_check_refuses_overclaimed_192_bit_set():
    proc = run(
        "params",
        "check",
        "--poly-modulus-degree",
        "8192",
        "--coeff-mod-bit-sizes",
        "60,40,60",
        "--security",
        "192",
        check=False,
    )
    assert proc.returncode != 0
    assert "160 exceeds 152" in proc.stderr


def test_params_check_accepts_the_same_set_at_128_bit():
    proc = run(
        "params", "check", "--poly-modulus-degree", "8192", "--coeff-mod-bit-sizes", "60,40,60", "--security", "128"
    )
    assert proc.stdout.startswith("OK")


def test_backends_json_lists_backends_and_protocols_with_versions():
    data = json.loads(run("backends", "--json").stdout)
    names = {b["name"]: b for b in data["backends"]}
    assert names["tenseal"]["library_version"] == "0.3.18"
    assert names["pyfhel"]["library_version"] == "3.5.0"
    assert {p["name"] for p in data["protocols"]} == {"cosine", "euclidean"}


def test_unknown_backend_is_a_clear_error_not_a_traceback(tmp_path):
    proc = run("keygen", "--out", str(tmp_path / "k"), env={"CIPHERFACE_BACKEND": "nope"}, check=False)
    assert proc.returncode == 2
    assert "unknown backend 'nope'; installed backends:" in proc.stderr
    assert "Traceback" not in proc.stderr


@pytest.fixture(scope="module")
def keydir(tmp_path_factory, request):
    out = tmp_path_factory.mktemp("keys")
    run("keygen", "--backend", "pyfhel", "--max-dim", "128", "--out", str(out))
    return out


def test_keygen_writes_owner_only_secret_and_public_bundle(keydir):
    assert stat.S_IMODE(os.stat(keydir / "secret.cfk").st_mode) == 0o600
    assert (keydir / "public.cfk").stat().st_size > 0


@pytest.mark.parametrize(("metric", "same"), [("euclidean", True), ("cosine", False)])
def test_distance_json_reports_value_decision_and_timings(keydir, tmp_path, metric, same):
    rng = np.random.default_rng(1)
    a = rng.normal(size=128) * 0.05
    b = a + 0.001 if same else rng.normal(size=128) * 0.05
    np.save(tmp_path / "a.npy", a)
    np.save(tmp_path / "b.npy", b)
    out = json.loads(
        run(
            "distance",
            "--key",
            str(keydir),
            "--metric",
            metric,
            str(tmp_path / "a.npy"),
            str(tmp_path / "b.npy"),
            "--json",
        ).stdout
    )
    want = (
        float((a - b) @ (a - b)) if metric == "euclidean" else float(1 - a @ b / np.linalg.norm(a) / np.linalg.norm(b))
    )
    assert abs(out["value"] - want) < 1e-5
    assert out["same_person"] is same
    assert out["backend"] == "pyfhel"
    assert set(out["timings_ms"]) == {"load_keys", "encrypt", "encrypted_distance", "decrypt_decide"}


def test_distance_on_a_non_npy_file_is_a_clear_error(keydir, tmp_path):
    (tmp_path / "x.npy").write_bytes(b"\x80\x04garbage")
    proc = run("distance", "--key", str(keydir), str(tmp_path / "x.npy"), str(tmp_path / "x.npy"), check=False)
    assert proc.returncode == 2 and "not a readable .npy array" in proc.stderr
