"""Every preset on every backend, through the whole user path: keys, canaried encryption,
the matcher's distance, the key owner's checks and decision, against numpy."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from cipherface import KeyOwner, Matcher
from cipherface.backend import power_of_two_steps
from cipherface.params import PRESETS
from cipherface.plugins import get_protocol
from cipherface.testing.conformance import PROTOCOL_TOLERANCE


@pytest.mark.parametrize("preset", list(PRESETS))
def test_every_preset_gives_numpy_distances_and_decisions(backend_name, preset):
    owner = KeyOwner.generate(backend_name, preset, rotation_steps=power_of_two_steps(512))
    matcher = Matcher(owner.public_bundle())
    rng = np.random.default_rng(9)
    for metric, threshold in (("cosine", 0.07), ("euclidean", 0.6)):
        p = get_protocol(metric)
        for dim in (128, 512):
            a = rng.normal(size=dim) * 0.05
            for b in (a + rng.normal(size=dim) * 0.001, rng.normal(size=dim) * 0.05):
                want = p.plaintext(p.prepare(a), p.prepare(b))
                d = owner.decide(
                    matcher.distance(owner.encrypt(a, metric), owner.encrypt(b, metric)), threshold, metric
                )
                assert abs(d.value - want) <= PROTOCOL_TOLERANCE * max(1, abs(want)), (preset, metric, dim)
                assert d.same_person == p.decide(want, threshold)


def run(*args):
    return subprocess.run([sys.executable, "-m", "cipherface", *args], capture_output=True, text=True, env=os.environ)


def test_192_bit_keys_from_the_cli_give_the_right_cosine_distance(tmp_path):
    """The reported reproduction: --security 192 printed -0.028..0.084 for a true 0.0013."""
    assert run("keygen", "--backend", "tenseal", "--security", "192", "--out", str(tmp_path / "k")).returncode == 0
    rng = np.random.default_rng(13)
    a = rng.normal(size=128)
    b = a + rng.normal(size=128) * 0.05
    np.save(tmp_path / "a.npy", a)
    np.save(tmp_path / "b.npy", b)
    want = 1 - a @ b / np.linalg.norm(a) / np.linalg.norm(b)
    assert 0.0005 < want < 0.003
    for _ in range(3):
        proc = run(
            "distance",
            "--key",
            str(tmp_path / "k"),
            "--metric",
            "cosine",
            "--json",
            *(str(tmp_path / f) for f in ("a.npy", "b.npy")),
        )
        out = json.loads(proc.stdout)
        assert abs(out["value"] - want) < 1e-5 and out["same_person"] is True
