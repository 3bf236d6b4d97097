import pytest

from cipherface import envelope
from cipherface.errors import EnvelopeError, KeyMismatchError, VersionError, WrongKindError


def make(**overrides):
    fields = dict(backend="b", scheme="ckks", params={"x": 1}, key_id="k1", parts={"a": b"12", "b": b"345"})
    fields.update(overrides)
    return envelope.pack(envelope.CIPHERTEXT, **fields)


def test_round_trip_keeps_parts_in_order():
    env = envelope.decode(make(meta={"dim": 3}))
    assert env.parts == {"a": b"12", "b": b"345"}
    assert (env.kind, env.backend, env.key_id, env.meta) == ("ciphertext", "b", "k1", {"dim": 3})


@pytest.mark.parametrize("cut", range(0, 120, 7))
def test_every_truncation_is_a_clear_error(cut):
    blob = make()
    with pytest.raises(EnvelopeError, match="truncated|corrupted"):
        envelope.decode(blob[: min(cut, len(blob) - 1)])


def test_trailing_bytes_are_corruption():
    with pytest.raises(EnvelopeError, match="corrupted"):
        envelope.decode(make() + b"x")


def test_pickle_is_never_accepted():
    import pickle

    with pytest.raises(EnvelopeError, match="not a cipherface blob"):
        envelope.decode(pickle.dumps({"kind": "ciphertext"}))


def test_future_version_names_both_versions():
    env = envelope.decode(make())
    env.version = 7
    with pytest.raises(VersionError, match="version 7.*up to version 2"):
        envelope.decode(env.to_bytes())


def test_expect_checks_kind_then_key():
    with pytest.raises(WrongKindError, match="expected a public-bundle, got a ciphertext"):
        envelope.expect(make(), kind=envelope.PUBLIC_BUNDLE)
    with pytest.raises(KeyMismatchError, match="k1.*k2"):
        envelope.expect(make(), kind=envelope.CIPHERTEXT, key_id="k2")


def test_non_bytes_input_is_refused():
    with pytest.raises(EnvelopeError, match="expected bytes"):
        envelope.decode("CIPHERFACE")  # type: ignore[arg-type]
