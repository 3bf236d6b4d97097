"""The abstract test classes of the conformance suite (see ``cipherface.testing``).

Each class covers one capability (its ``capability`` attribute), each test one
behaviour; failure messages start with the capability so a report says what broke.
"""

from __future__ import annotations

import secrets
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from cipherface import envelope
from cipherface.backend import FHEBackend, power_of_two_steps
from cipherface.errors import (
    BackendMismatchError,
    CipherfaceError,
    DimensionError,
    EnvelopeError,
    KeyMismatchError,
    SecretKeyRequiredError,
    VersionError,
    WrongKindError,
)
from cipherface.gallery.packing import decrypt_scores, encrypt_block, encrypt_probe
from cipherface.params import PRESETS, CKKSParams
from cipherface.plugins import get_protocol

DIMS = (1, 128, 512, 4096)
PROTOCOLS = ("euclidean", "cosine")
#: Error allowed on a protocol's decrypted result, relative to max(1, |expected|), for every
#: parameter set (docs/plugin-authors.md). Measured here: at most 2e-5 (N=32768); a chain
#: whose special prime is too small is off by 0.1 to 3.
PROTOCOL_TOLERANCE = 1e-4


def assert_close(actual, expected, tol: float, what: str) -> None:
    actual, expected = np.asarray(actual, dtype=float), np.asarray(expected, dtype=float)
    err = np.max(np.abs(actual - expected) / np.maximum(1.0, np.abs(expected))) if expected.size else 0.0
    assert err <= tol, f"{what}: max error {err:.3g} exceeds tolerance {tol:g}"


def _secret_only_parts(secret_blob: bytes, public_blob: bytes) -> list[tuple[str, bytes]] | None:
    """Parts of a secret bundle its public bundle lacks (looking inside nested envelopes);
    None when the two bundles carry the same parts."""
    secret, public = envelope.decode(secret_blob), envelope.decode(public_blob)
    found: list[tuple[str, bytes]] = []
    for name, data in secret.parts.items():
        if name not in public.parts:
            found.append((name, data))
        elif data != public.parts[name] and data.startswith(envelope.MAGIC):
            found.extend(_secret_only_parts(data, public.parts[name]) or [])
    return found or None


def _cases(protocol: str, dim: int, limit: float, rng: np.random.Generator) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Random and adversarial input pairs; the largest are as large as the key owner allows."""
    big = np.sqrt(limit) / 2 * (1 - 1e-9)  # euclidean: 4·norm² = limit
    spread = np.zeros(dim)
    spread[::2] = big / np.sqrt((dim + 1) // 2)
    return {
        "random": (rng.normal(size=dim), rng.normal(size=dim)),
        "identical": (np.full(dim, 0.3), np.full(dim, 0.3)),
        "opposite": (np.ones(dim), -np.ones(dim)),
        "one_hot": (np.eye(dim)[0], np.eye(dim)[dim - 1]),
        "tiny": (np.full(dim, 1e-4), np.full(dim, -1e-4)),
        "largest_opposite": (np.eye(dim)[0] * big, -np.eye(dim)[0] * big),
        "largest_spread": (spread, -spread),
    }


def protocol_errors(backend_class: type[FHEBackend], name: str, params: CKKSParams, tol: float) -> list[str]:
    """Every protocol, on fresh keys for ``params``, 1:1 at d=128 and 512 and the packed gallery
    kernel, against numpy: the failures, each naming the case.

    Keys come from the plugin's ``_generate`` hook, past the core's parameter checks, so the
    suite measures what the library computes for any chain, including one the core refuses."""
    backend = backend_class._generate(params, secrets.token_hex(8), power_of_two_steps(512))
    rng = np.random.default_rng(20261127)
    failures: list[str] = []

    def compare(got: np.ndarray, want: np.ndarray, what: str) -> None:
        err = float(np.max(np.abs(got - want) / np.maximum(1.0, np.abs(want))))
        if not err <= tol:
            failures.append(f"{what}: error {err:.3g} > {tol:g}")

    for metric in PROTOCOLS:
        p = get_protocol(metric)
        for dim in (128, 512):
            for case, (a, b) in _cases(metric, dim, params.result_limit, rng).items():
                pa, pb = p.prepare(a), p.prepare(b)
                ct = p.encrypted(backend, backend.encrypt(pa), backend.encrypt(pb), dim)
                compare(backend.decrypt(ct, 1)[:1], np.array([p.plaintext(pa, pb)]), f"{metric} d={dim} {case}")
        # the packed gallery kernel (d=32 keeps it quick): identities, one as large as allowed, against probes
        cases = _cases(metric, 32, params.result_limit, rng)
        gallery = [cases["random"][0], cases["one_hot"][0], cases["largest_spread"][0], cases["tiny"][0]]
        slots = [(0, s) for s in (0, 1, 7, backend.slot_count - 1)]
        block = np.zeros((len(p.gallery_row(gallery[0])), backend.slot_count))
        block[:, [s for _, s in slots]] = np.array([p.gallery_row(g) for g in gallery]).T
        columns = [backend.load_ciphertext(x, kind=envelope.GALLERY_BLOCK)[0] for x in encrypt_block(backend, block, 0)]
        for case in ("random", "largest_spread"):
            probe_blobs, _, offset = encrypt_probe(backend, p, cases[case][1])
            probe = [backend.load_ciphertext(x, kind=envelope.GALLERY_BLOCK)[0] for x in probe_blobs]
            scored = backend.inner_product(columns, probe)
            result = backend.dump_ciphertext(scored, kind=envelope.RESULT, meta={"block": 0})
            scores = decrypt_scores(backend, result)[1][[s for _, s in slots]] + offset
            want = np.array([p.plaintext(p.prepare(g), p.prepare(cases[case][1])) for g in gallery])
            compare(scores, want, f"{metric} gallery d=32 probe {case}")
    return failures


class _Fixtures:
    """Fixtures every capability class shares; override ``backend_class`` (required)."""

    @pytest.fixture(scope="class")
    @classmethod
    def backend_class(cls) -> type[FHEBackend]:
        raise NotImplementedError("override the `backend_class` fixture to return your FHEBackend subclass")

    @pytest.fixture(scope="class")
    @classmethod
    def preset(cls) -> str:
        return "n8192-s128"

    @pytest.fixture(scope="class")
    @classmethod
    def tolerance(cls) -> float:
        return 1e-5

    @pytest.fixture(scope="class")
    @classmethod
    def supports_threads(cls, backend_class) -> bool:
        return bool(backend_class.thread_safe)

    @pytest.fixture(scope="class")
    @classmethod
    def backend(cls, backend_class, preset) -> FHEBackend:
        return backend_class.generate(preset)

    @pytest.fixture(scope="class")
    @classmethod
    def public_backend(cls, backend) -> FHEBackend:
        return type(backend).load_bundle(backend.export_public_bundle())

    @pytest.fixture(scope="class")
    @classmethod
    def other_key_backend(cls, backend_class, preset) -> FHEBackend:
        return backend_class.generate(preset, rotation_steps=[1])

    @pytest.fixture
    def rng(self) -> np.random.Generator:
        return np.random.default_rng(20261123)


class KeyTests(_Fixtures):
    capability = "keys"

    def test_generated_keys_report_slots_and_security(self, backend, preset):
        p = PRESETS[preset]
        assert backend.slot_count == p.slot_count, f"keys: slot count {backend.slot_count} != {p.slot_count}"
        assert backend.security_level == p.security_level
        assert backend.has_secret_key, "keys: freshly generated keys must hold the secret key"

    def test_secret_bundle_round_trip_decrypts(self, backend, rng, tolerance):
        x = rng.normal(size=64)
        restored = type(backend).load_bundle(backend.export_secret_bundle())
        assert restored.key_id == backend.key_id
        assert_close(restored.decrypt(backend.encrypt(x), 64), x, tolerance, "keys: secret bundle round trip")

    def test_public_bundle_encrypts_for_the_key_owner(self, backend, public_backend, rng, tolerance):
        x = rng.normal(size=64)
        assert_close(
            backend.decrypt(public_backend.encrypt(x), 64), x, tolerance, "keys: ciphertext made from the public bundle"
        )

    def test_public_bundle_refuses_to_decrypt(self, backend, public_backend):
        assert not public_backend.has_secret_key, "keys: backend loaded from the public bundle claims a secret key"
        with pytest.raises(SecretKeyRequiredError):
            public_backend.decrypt(backend.encrypt([1.0, 2.0]))

    def test_public_bundle_cannot_decrypt_even_bypassing_checks(self, backend, public_backend):
        x = np.linspace(-1, 1, 32)
        try:
            leaked = np.asarray(public_backend._decrypt(backend.encrypt(x)), dtype=float)[:32]
        except Exception:
            return  # no secret key to decrypt with: what we want
        assert not np.allclose(leaked, x, atol=1e-3), (
            "keys: a backend loaded from the public bundle decrypted a ciphertext: "
            "the public bundle carries the secret key"
        )

    def test_public_bundle_contains_no_secret_key_bytes(self, backend):
        public_blob = backend.export_public_bundle()
        assert envelope.decode(public_blob).kind == envelope.PUBLIC_BUNDLE
        leaks = _secret_only_parts(backend.export_secret_bundle(), public_blob)
        assert leaks is not None, "keys: the public bundle holds everything the secret bundle holds"
        for name, data in leaks:
            window = data[len(data) // 2 : len(data) // 2 + 64]
            assert window not in public_blob, f"keys: secret part {name!r} appears inside the public bundle"

    def test_public_bundle_cannot_export_secret_bundle(self, public_backend):
        with pytest.raises(SecretKeyRequiredError):
            public_backend.export_secret_bundle()

    def test_each_generation_has_its_own_key_id(self, backend, other_key_backend):
        assert backend.key_id != other_key_backend.key_id


class PrecisionTests(_Fixtures):
    capability = "precision"

    @pytest.mark.parametrize("dim", DIMS)
    def test_encrypt_decrypt_round_trip(self, backend, rng, tolerance, dim):
        x = rng.uniform(-1, 1, size=dim)
        assert_close(backend.decrypt(backend.encrypt(x), dim), x, tolerance, f"precision: d={dim}")

    def test_round_trip_at_full_slot_count(self, backend, rng, tolerance):
        x = rng.uniform(-1, 1, size=backend.slot_count)
        assert_close(backend.decrypt(backend.encrypt(x)), x, tolerance, "precision: all slots")

    @pytest.mark.parametrize("depth", [0, 1])
    def test_encrypt_at_a_lower_level(self, backend, rng, tolerance, depth):
        x = rng.uniform(-1, 1, size=200)
        ct = backend.encrypt(x, depth=depth)
        assert backend.depth_left(ct) == depth, f"precision: asked depth {depth}, got {backend.depth_left(ct)}"
        assert_close(backend.decrypt(ct, 200), x, tolerance, f"precision: encrypted at depth {depth}")

    def test_unused_slots_decrypt_to_zero(self, backend, tolerance):
        out = backend.decrypt(backend.encrypt([3.0, -2.0]))
        assert_close(out[2:], np.zeros(backend.slot_count - 2), tolerance, "precision: padding slots")

    @pytest.fixture(scope="class")
    @classmethod
    def protocol_tolerance(cls) -> float:
        return PROTOCOL_TOLERANCE

    @pytest.fixture(scope="class")
    @classmethod
    def extra_parameter_sets(cls) -> dict[str, CKKSParams]:
        """Parameter sets to check beside the presets (``cipherface conformance --params``)."""
        return {}

    @pytest.mark.parametrize("preset_name", list(PRESETS))
    def test_preset_computes_both_protocols_within_tolerance(self, backend_class, preset_name, protocol_tolerance):
        errors = protocol_errors(backend_class, preset_name, PRESETS[preset_name], protocol_tolerance)
        assert not errors, f"precision: preset {preset_name}: " + "; ".join(errors)

    def test_extra_parameter_sets_compute_both_protocols_within_tolerance(
        self, backend_class, extra_parameter_sets, protocol_tolerance
    ):
        if not extra_parameter_sets:
            pytest.skip("no extra parameter sets given (cipherface conformance --params)")
        errors = [
            f"parameter set {name} {list(p.coeff_mod_bit_sizes)}: {e}"
            for name, p in extra_parameter_sets.items()
            for e in protocol_errors(backend_class, name, p, protocol_tolerance)
        ]
        assert not errors, "precision: " + "; ".join(errors)


class DimensionTests(_Fixtures):
    capability = "dimensions"

    def test_vector_longer_than_slot_count_is_refused(self, backend):
        with pytest.raises(DimensionError, match="slots"):
            backend.encrypt(np.ones(backend.slot_count + 1))

    def test_nan_is_refused(self, backend):
        with pytest.raises(DimensionError):
            backend.encrypt([1.0, float("nan")])

    def test_matrix_is_refused(self, backend):
        with pytest.raises(DimensionError):
            backend.encrypt(np.ones((2, 2)))

    def test_empty_vector_is_refused(self, backend):
        with pytest.raises(DimensionError):
            backend.encrypt([])


class PrimitiveTests(_Fixtures):
    capability = "primitives"

    @pytest.fixture
    def xy(self, rng):
        return rng.uniform(-1, 1, size=256), rng.uniform(-1, 1, size=256)

    def _check(self, backend, ct, expected, tol, what):
        assert_close(backend.decrypt(ct, len(expected)), expected, tol, f"primitives: {what}")

    def test_add(self, backend, xy, tolerance):
        x, y = xy
        self._check(backend, backend.add(backend.encrypt(x), backend.encrypt(y)), x + y, tolerance, "add")

    def test_sub(self, backend, xy, tolerance):
        x, y = xy
        self._check(backend, backend.sub(backend.encrypt(x), backend.encrypt(y)), x - y, tolerance, "sub")

    def test_negate(self, backend, xy, tolerance):
        x, _ = xy
        self._check(backend, backend.negate(backend.encrypt(x)), -x, tolerance, "negate")

    def test_add_plain_vector(self, backend, xy, tolerance):
        x, y = xy
        self._check(backend, backend.add_plain(backend.encrypt(x), y), x + y, tolerance, "add_plain")

    def test_add_plain_scalar(self, backend, xy, tolerance):
        x, _ = xy
        self._check(backend, backend.add_plain(backend.encrypt(x), 0.75), x + 0.75, tolerance, "add scalar")

    def test_multiply_ciphertexts(self, backend, xy, tolerance):
        x, y = xy
        self._check(backend, backend.multiply(backend.encrypt(x), backend.encrypt(y)), x * y, tolerance, "ct*ct")

    def test_multiply_consumes_one_level(self, backend, xy):
        x, y = xy
        a = backend.encrypt(x)
        assert backend.depth_left(backend.multiply(a, backend.encrypt(y))) == backend.depth_left(a) - 1

    def test_multiply_plain(self, backend, xy, tolerance):
        x, y = xy
        self._check(backend, backend.multiply_plain(backend.encrypt(x), y), x * y, tolerance, "ct*pt")

    def test_multiply_scalar(self, backend, xy, tolerance):
        x, _ = xy
        self._check(backend, backend.multiply_scalar(backend.encrypt(x), -2.5), x * -2.5, tolerance, "ct*scalar")

    def test_lazy_multiply_accumulate(self, backend, rng, tolerance):
        xs, ys = rng.uniform(-1, 1, size=(4, 64)), rng.uniform(-1, 1, size=(4, 64))
        acc = None
        for x, y in zip(xs, ys):
            prod = backend.multiply(backend.encrypt(x), backend.encrypt(y), relinearize=False, rescale=False)
            acc = prod if acc is None else backend.add(acc, prod)
        out = backend.rescale(backend.relinearize(acc))
        self._check(backend, out, (xs * ys).sum(axis=0), tolerance, "deferred relinearise/rescale")

    @pytest.mark.parametrize("step", [1, 4, 3, 37, -1])
    def test_rotate(self, backend, xy, tolerance, step):
        full = np.zeros(backend.slot_count)
        full[:256] = xy[0]
        self._check(
            backend, backend.rotate(backend.encrypt(full), step), np.roll(full, -step), tolerance, f"rotate by {step}"
        )

    @pytest.mark.parametrize("length", [1, 100, 128, 4096])
    def test_sum_slots(self, backend, rng, tolerance, length):
        length = min(length, backend.slot_count)
        x = rng.uniform(-1, 1, size=length)
        out = backend.decrypt(backend.sum_slots(backend.encrypt(x), length), 1)[0]
        assert_close(out, x.sum(), tolerance, f"primitives: sum of {length} slots")

    def test_drop_level_keeps_value(self, backend, xy, tolerance):
        x, _ = xy
        a = backend.encrypt(x)
        low = backend.drop_level(a, 1)
        assert backend.depth_left(low) == backend.depth_left(a) - 1
        self._check(backend, low, x, tolerance, "drop_level")

    def test_dropped_ciphertext_serialises_smaller(self, backend, xy):
        a = backend.encrypt(xy[0])
        low = backend.drop_to_depth(a, 0)
        assert len(backend.dump_ciphertext(low)) < len(backend.dump_ciphertext(a)), (
            "primitives: a ciphertext at a lower level should serialise smaller"
        )

    def test_level_survives_serialisation(self, backend, xy, tolerance):
        x, y = xy
        low = backend.drop_level(backend.encrypt(x), 1)
        loaded, _ = backend.load_ciphertext(backend.dump_ciphertext(low))
        assert backend.depth_left(loaded) == backend.depth_left(low), "primitives: level lost in serialisation"
        self._check(backend, backend.multiply_plain(loaded, y), x * y, tolerance, "multiply after load")

    def test_inner_product(self, backend, rng, tolerance):
        a, b = rng.uniform(-1, 1, size=(5, 300)), rng.uniform(-1, 1, size=(5, 300))
        cts_a = [backend.drop_level(backend.encrypt(v), 1) for v in a]
        cts_b = [backend.drop_level(backend.encrypt(v), 1) for v in b]
        out = backend.inner_product(cts_a, cts_b)
        self._check(backend, out, (a * b).sum(axis=0), tolerance, "inner_product")
        assert backend.depth_left(out) == backend.depth_left(cts_a[0]) - 1

    def test_operands_at_different_levels_are_aligned(self, backend, xy, tolerance):
        x, y = xy
        self._check(
            backend,
            backend.add(backend.drop_level(backend.encrypt(x), 1), backend.encrypt(y)),
            x + y,
            tolerance,
            "add across levels",
        )

    def test_multiplying_past_the_depth_is_a_clear_error(self, backend, xy):
        a = backend.drop_to_depth(backend.encrypt(xy[0]), 0)
        with pytest.raises(CipherfaceError, match="depth"):
            backend.multiply(a, a)


class ProtocolTests(_Fixtures):
    capability = "protocols"

    def _encrypted(self, backend, name, a, b):
        p = get_protocol(name)
        pa, pb = p.prepare(a), p.prepare(b)
        ct = p.encrypted(backend, backend.encrypt(pa), backend.encrypt(pb), pa.size)
        return backend.decrypt(ct, 1)[0], p.plaintext(pa, pb)

    @pytest.mark.parametrize("name", PROTOCOLS)
    @pytest.mark.parametrize("dim", (128, 512, 4096))
    def test_random_embeddings_match_numpy(self, backend, rng, tolerance, name, dim):
        if dim > backend.slot_count:
            pytest.skip(f"d={dim} exceeds the slot count")
        got, want = self._encrypted(backend, name, rng.normal(size=dim), rng.normal(size=dim))
        assert_close(got, want, tolerance, f"protocols: {name} at d={dim}")

    @pytest.mark.parametrize("name", PROTOCOLS)
    @pytest.mark.parametrize("case", ["identical", "opposite_maxima", "negative", "one_hot", "tiny", "zeros_vs_ones"])
    def test_adversarial_embeddings_match_numpy(self, backend, tolerance, name, case):
        d = 128
        a, b = {
            "identical": (np.full(d, 0.3), np.full(d, 0.3)),
            "opposite_maxima": (np.ones(d), -np.ones(d)),
            "negative": (-np.linspace(0.1, 1, d), -np.linspace(1, 0.1, d)),
            "one_hot": (np.eye(d)[0], np.eye(d)[d - 1]),
            "tiny": (np.full(d, 1e-4), np.full(d, -1e-4)),
            "zeros_vs_ones": (np.zeros(d), np.ones(d)),
        }[case]
        if name == "cosine" and not np.any(a):
            with pytest.raises(DimensionError):
                get_protocol(name).prepare(a)
            return
        got, want = self._encrypted(backend, name, a, b)
        assert_close(got, want, tolerance, f"protocols: {name} on {case}")

    def test_euclidean_of_zero_vectors_is_zero(self, backend, tolerance):
        got, want = self._encrypted(backend, "euclidean", np.zeros(64), np.zeros(64))
        assert want == 0.0
        assert_close(got, 0.0, tolerance, "protocols: euclidean of zeros")

    @pytest.mark.parametrize("name", PROTOCOLS)
    def test_decisions_equal_plaintext_decisions(self, backend, rng, name):
        p = get_protocol(name)
        thresholds = {"cosine": [0.5, 0.9, 1.0, 1.1], "euclidean": [10.0, 15.0, 16.0, 17.0]}[name]
        for _ in range(4):
            got, want = self._encrypted(backend, name, rng.normal(size=128), rng.normal(size=128))
            for t in thresholds:
                if abs(want - p.cutoff(t)) < 1e-3:
                    continue  # within noise of the threshold: either answer is honest
                assert p.decide(got, t) == p.decide(want, t), f"protocols: {name} decision differs at {t}"


class EnvelopeTests(_Fixtures):
    capability = "envelope"

    @pytest.fixture(scope="class")
    @classmethod
    def blob(cls, backend):
        return backend.dump_ciphertext(backend.encrypt(np.linspace(-1, 1, 16)), meta={"dim": 16})

    def test_ciphertext_round_trip(self, backend, blob, tolerance):
        ct, meta = backend.load_ciphertext(blob)
        assert meta == {"dim": 16}
        assert_close(backend.decrypt(ct, 16), np.linspace(-1, 1, 16), tolerance, "envelope: round trip")

    def test_matcher_can_load_and_reserialise(self, public_backend, blob):
        ct, _ = public_backend.load_ciphertext(blob)
        assert envelope.decode(public_backend.dump_ciphertext(ct)).kind == envelope.CIPHERTEXT

    def test_wrong_key_is_refused(self, other_key_backend, blob):
        with pytest.raises(KeyMismatchError, match="key"):
            other_key_backend.load_ciphertext(blob)

    def test_wrong_backend_is_refused(self, backend, blob):
        env = envelope.decode(blob)
        env.backend = "some-other-backend"
        with pytest.raises(BackendMismatchError, match="some-other-backend"):
            backend.load_ciphertext(env.to_bytes())

    def test_bundle_of_another_backend_is_refused(self, backend):
        env = envelope.decode(backend.export_public_bundle())
        env.backend = "some-other-backend"
        with pytest.raises(BackendMismatchError, match=backend.name):
            type(backend).load_bundle(env.to_bytes())

    def test_wrong_kind_is_refused(self, backend):
        with pytest.raises(WrongKindError, match="public-bundle"):
            backend.load_ciphertext(backend.export_public_bundle())

    def test_future_version_is_refused(self, backend, blob):
        env = envelope.decode(blob)
        env.version = envelope.FORMAT_VERSION + 1
        with pytest.raises(VersionError, match="upgrade"):
            backend.load_ciphertext(env.to_bytes())

    def test_truncated_ciphertext_is_refused(self, backend, blob):
        for cut in (0, 5, len(envelope.MAGIC) + 3, 60, len(blob) // 2, len(blob) - 1):
            with pytest.raises(EnvelopeError):
                backend.load_ciphertext(blob[:cut])

    def test_truncated_bundle_is_refused(self, backend):
        bundle = backend.export_public_bundle()
        with pytest.raises(EnvelopeError, match="truncated"):
            type(backend).load_bundle(bundle[: len(bundle) - 100])

    def test_random_bytes_are_refused(self, backend):
        with pytest.raises(EnvelopeError, match="not a cipherface blob"):
            backend.load_ciphertext(secrets.token_bytes(4096))

    def test_flipped_byte_is_refused(self, backend, blob):
        corrupted = bytearray(blob)
        corrupted[-10] ^= 0xFF
        with pytest.raises(EnvelopeError, match="corrupted"):
            backend.load_ciphertext(bytes(corrupted))

    def test_well_formed_envelope_with_garbage_payload_is_refused(self, backend, blob):
        env = envelope.decode(blob)
        env.parts = {"ct": secrets.token_bytes(len(env.parts["ct"]))}
        with pytest.raises(EnvelopeError, match=backend.name):
            backend.load_ciphertext(env.to_bytes())

    def test_the_recorded_level_is_checked(self, backend, blob):
        ct, _ = backend.load_ciphertext(blob)
        assert backend.depth_left(ct) == envelope.decode(blob).meta["level"] == backend.params.depth
        for wrong in (backend.params.depth - 1, backend.params.depth + 1, -1, "2", None):
            env = envelope.decode(blob)
            env.meta = {**env.meta, "level": wrong}
            with pytest.raises(EnvelopeError, match="level"):
                backend.load_ciphertext(env.to_bytes())
        dropped = backend.drop_level(ct)
        ct2, _ = backend.load_ciphertext(backend.dump_ciphertext(dropped))
        assert backend.depth_left(ct2) == backend.params.depth - 1

    def test_other_parameters_are_refused(self, backend, blob):
        env = envelope.decode(blob)
        env.params = {**env.params, "scale_bits": env.params["scale_bits"] - 1}
        with pytest.raises(KeyMismatchError, match="parameters"):
            backend.load_ciphertext(env.to_bytes())


class PresetTests(_Fixtures):
    capability = "presets"

    def test_extra_parameter_sets_are_accepted(self, extra_parameter_sets):
        if not extra_parameter_sets:
            pytest.skip("no extra parameter sets given (cipherface conformance --params)")
        refused = {name: p.problems() for name, p in extra_parameter_sets.items() if p.problems()}
        assert not refused, f"presets: refused parameter set(s): {refused}"

    @pytest.mark.parametrize("name", list(PRESETS))
    def test_preset_meets_its_security_level(self, backend_class, name):
        p = PRESETS[name]
        assert p.problems() == [], f"presets: {name} is refused: {p.problems()}"
        b = backend_class.generate(name, rotation_steps=[1])
        assert (b.slot_count, b.security_level) == (p.slot_count, p.security_level)
        assert b.depth_left(b.encrypt([1.0])) == p.depth, f"presets: {name} depth"


class ThreadSafetyTests(_Fixtures):
    capability = "threads"

    def test_concurrent_distances_equal_sequential_ones(self, backend, rng, supports_threads, tolerance):
        if not supports_threads:
            pytest.skip("backend declares thread_safe = False")
        p = get_protocol("euclidean")
        pairs = [(backend.encrypt(rng.normal(size=128)), backend.encrypt(rng.normal(size=128))) for _ in range(8)]

        def run(pair):
            return backend.decrypt(p.encrypted(backend, pair[0], pair[1], 128), 1)[0]

        sequential = [run(pair) for pair in pairs]
        with ThreadPoolExecutor(max_workers=4) as pool:
            concurrent = list(pool.map(run, pairs * 2))
        assert_close(concurrent, sequential * 2, tolerance, "threads: concurrent results")


_CAPABILITY_CLASSES = (
    KeyTests,
    PrecisionTests,
    DimensionTests,
    PrimitiveTests,
    ProtocolTests,
    EnvelopeTests,
    PresetTests,
    ThreadSafetyTests,
)


class BackendConformance(*_CAPABILITY_CLASSES):
    """Every capability; subclass this and override the ``backend_class`` fixture."""


CAPABILITIES = {cls.capability: cls for cls in _CAPABILITY_CLASSES}
