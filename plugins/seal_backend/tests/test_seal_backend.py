"""The seal-python backend plugged in by entry point, with nothing in the core naming it."""

import subprocess
import sys

import numpy as np
import pytest

from cipherface import KeyOwner
from cipherface.errors import BackendMismatchError
from cipherface.identification import Identifier
from cipherface.plugins import get_backend, registry


def test_registered_through_its_entry_point_and_listed():
    assert get_backend("seal").__module__ == "cipherface_seal"
    assert "seal" in registry().backends
    out = subprocess.run([sys.executable, "-m", "cipherface", "backends"], capture_output=True, text=True, check=True)
    assert "seal" in out.stdout and "4.4.0" in out.stdout


@pytest.mark.parametrize("other", ["tenseal", "pyfhel"])
def test_its_blobs_are_refused_by_the_other_backends_naming_both(other):
    owner = KeyOwner.generate("seal", rotation_steps=[1])
    with pytest.raises(BackendMismatchError, match=f"'seal'.*'{other}'"):
        get_backend(other).load_bundle(owner.public_bundle())


def test_the_packed_gallery_runs_on_it(tmp_path):
    rng = np.random.default_rng(4)
    people = rng.normal(size=(30, 16))
    with Identifier.open(tmp_path / "g.db", tmp_path / "keys", create=True, backend="seal", dim=16) as ident:
        ident.enroll([f"p{i}" for i in range(30)], list(people), progress=False)
        assert ident.identify(people[7], top_k=1, threshold=0.07).identity == "p7"
        assert ident.remove("p7") == 1
        assert ident.identify(people[7], top_k=1, threshold=0.07).identity is None
        assert ident.verify() == {"blocks": 1, "identities": 29}
