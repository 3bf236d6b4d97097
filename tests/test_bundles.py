"""Public and secret bundles load exactly as made, or are refused: never a hang, never a key
made up by the library while loading or computing."""

import subprocess
import sys
import textwrap

import numpy as np
import pytest

from cipherface import Matcher, envelope
from cipherface.errors import CipherfaceError, EnvelopeError
from cipherface.plugins import get_backend


def edited(blob, **changes):
    env = envelope.decode(blob)
    for name, value in changes.items():
        setattr(env, name, value)
    return env.to_bytes()


def with_steps(blob, steps):
    env = envelope.decode(blob)
    return edited(blob, meta={**env.meta, "rotation_steps": steps})


@pytest.mark.parametrize("steps", [[0], [0, 1], [-1], [1, 1], [4096], [1.5], [True], "1,2", [1] * 5000])
def test_invalid_rotation_steps_are_refused_at_load(owner, steps):
    with pytest.raises(EnvelopeError, match="rotation steps"):
        Matcher(with_steps(owner.public_bundle(), steps))


def test_a_step_zero_bundle_can_never_make_the_matcher_loop(owner, tmp_path):
    """The reported reproduction looped forever in rotate(); run it where a hang is a failure."""
    (tmp_path / "public.cfk").write_bytes(with_steps(owner.public_bundle(), [0, 1, 2, 4, 8, 16, 32, 64]))
    script = textwrap.dedent(
        f"""
        import numpy as np
        from cipherface import Matcher
        from cipherface.errors import CipherfaceError
        try:
            Matcher({str(tmp_path / "public.cfk")!r})
        except CipherfaceError as exc:
            print("refused:", exc)
        """
    )
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert proc.stdout.startswith("refused:") and "1..4095" in proc.stdout


@pytest.mark.parametrize("part", ["galois_keys", "relin_keys", "public_key"])
def test_a_bundle_with_a_part_renamed_by_one_bit_is_refused(owner, part):
    """The reported reproduction: Pyfhel made rotation keys itself, and 5 of 10 pairs came out same."""
    env = envelope.decode(owner.public_bundle())
    flipped = part[:-1] + chr(ord(part[-1]) ^ 1)
    env.parts = {(flipped if name == part else name): data for name, data in env.parts.items()}
    with pytest.raises(EnvelopeError, match=rf"lacks part\(s\) \['{part}'\].*unexpected part\(s\) \['{flipped}'\]"):
        Matcher(env.to_bytes())


def test_a_public_bundle_carrying_the_secret_key_is_refused(owner):
    secret = envelope.decode(owner.backend.export_secret_bundle())
    with pytest.raises(EnvelopeError, match="unexpected part"):
        get_backend(owner.backend.name).load_bundle(edited(owner.public_bundle(), parts=secret.parts))


def test_a_secret_bundle_without_its_integrity_key_is_refused(owner):
    env = envelope.decode(owner.backend.export_secret_bundle())
    del env.parts["integrity_key"]
    with pytest.raises(EnvelopeError, match="integrity_key"):
        get_backend(owner.backend.name).load_bundle(env.to_bytes())


def test_empty_galois_keys_with_listed_steps_are_refused(owner):
    env = envelope.decode(owner.public_bundle())
    env.parts["galois_keys"] = b""
    with pytest.raises(EnvelopeError):
        Matcher(env.to_bytes())


def test_steps_listed_without_their_keys_never_give_an_answer(owners, backend_name):
    """A bundle that claims more rotations than its Galois keys hold: refused at load, or the
    distance fails with a CipherfaceError; no backend makes the missing key."""
    owner = owners[backend_name]
    bundle = with_steps(owner.public_bundle(), [1, 2, 4, 8, 16, 32, 64, 128, 256, 512])
    rng = np.random.default_rng(1)
    a = owner.encrypt(rng.normal(size=1000), "cosine")  # needs the 512 step no key exists for
    with pytest.raises(CipherfaceError):
        Matcher(bundle).distance(a, a)


def test_pyfhel_holds_exactly_the_keys_it_was_given(owners):
    matcher = Matcher(owners["pyfhel"].public_bundle())
    he = matcher.backend._he
    assert not he.is_rotate_key_empty() and not he.is_relin_key_empty() and he.is_secret_key_empty()


def test_every_bundle_is_decoded_once_on_its_way_to_a_backend(tmp_path, monkeypatch):
    """One loading path: an envelope is decoded once and passed down (it used to be 3 times for
    KeyOwner.load and 5 for Identifier.open)."""
    from collections import Counter

    import numpy as np

    from cipherface import KeyOwner, Matcher, envelope
    from cipherface.identification import Identifier

    owner = KeyOwner.generate("tenseal", rotation_steps=[1, 2, 4])
    owner.save(tmp_path / "keys")
    with Identifier.open(tmp_path / "g.db", tmp_path / "keys", create=True, dim=8) as ident:
        ident.enroll(["a"], [np.ones(8)], progress=False)
    seen: Counter = Counter()
    decode = envelope.decode

    def counting(blob):
        env = decode(blob)
        if env.kind in (envelope.SECRET_BUNDLE, envelope.PUBLIC_BUNDLE):
            seen[env.kind] += 1
        return env

    monkeypatch.setattr(envelope, "decode", counting)
    KeyOwner.load(tmp_path / "keys")
    Matcher(owner.public_bundle())
    assert seen == {envelope.SECRET_BUNDLE: 1, envelope.PUBLIC_BUNDLE: 1}
    seen.clear()
    with Identifier.open(tmp_path / "g.db", tmp_path / "keys"):
        pass
    assert seen == {envelope.SECRET_BUNDLE: 1, envelope.PUBLIC_BUNDLE: 1}
