"""What every module of the conformance suite shares: fixtures, helpers, tolerances."""

from __future__ import annotations

import secrets

import numpy as np
import pytest

from cipherface import envelope
from cipherface.backend import FHEBackend, power_of_two_steps
from cipherface.capabilities import DISTANCE_PRESERVING, EXACT, protocol_for
from cipherface.errors import CipherfaceError
from cipherface.gallery import layout as layouts
from cipherface.gallery.packing import decrypt_scores, encrypt_block, encrypt_probe
from cipherface.gallery.scan import SCORE_ROUNDING, at_level, probe_components
from cipherface.params import SchemeParams, default_preset
from cipherface.protocols.base import DistanceProtocol

DIMS = (1, 128, 512, 4096)
PROTOCOLS = ("euclidean", "cosine")
#: Error allowed on a protocol's decrypted result, relative to max(1, |expected|), for every
#: parameter set (docs/plugin-authors.md). Measured here: at most 2e-5 (N=32768); a chain
#: whose special prime is too small is off by 0.1 to 3.
PROTOCOL_TOLERANCE = 1e-4
#: Backends with exact arithmetic compute on integers: test reals are scaled by this and rounded.
EXACT_TEST_SCALE = 100


def fitted(p: DistanceProtocol, v: np.ndarray, limit: float) -> np.ndarray:
    """A test input as the key owner would accept it: unchanged for a protocol on reals; for a
    quantised one, scaled down (by 0.9 at a time) until it fits the quantisation range and no
    result can pass ``limit``."""
    v = np.asarray(v, dtype=np.float64)
    if not p.quant_scale or not np.any(v):
        return v
    for _ in range(200):
        try:
            p.prepare_checked(v, limit)
            return v
        except CipherfaceError:
            v = v * 0.9
    raise AssertionError("no scaled copy of the test input fits the protocol")


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


def _cases(p: DistanceProtocol, dim: int, limit: float, rng: np.random.Generator) -> dict[str, tuple]:
    """Random and adversarial input pairs; the largest are as large as the key owner allows."""
    big = np.sqrt(limit) / 2 * (1 - 1e-9) / (p.quant_scale or 1)  # euclidean: 4·norm² = limit
    spread = np.zeros(dim)
    spread[::2] = big / np.sqrt((dim + 1) // 2)
    cases = {
        "random": (rng.normal(size=dim), rng.normal(size=dim)),
        "identical": (np.full(dim, 0.3), np.full(dim, 0.3)),
        "opposite": (np.ones(dim), -np.ones(dim)),
        "one_hot": (np.eye(dim)[0], np.eye(dim)[dim - 1]),
        "tiny": (np.full(dim, 1e-4), np.full(dim, -1e-4)),
        "largest_opposite": (np.eye(dim)[0] * big, -np.eye(dim)[0] * big),
        "largest_spread": (spread, -spread),
    }
    return {case: (fitted(p, a, limit), fitted(p, b, limit)) for case, (a, b) in cases.items()}


def protocol_errors(backend_class: type[FHEBackend], name: str, params: SchemeParams, tol: float) -> list[str]:
    """Every protocol, on fresh keys for ``params``, 1:1 at d=128 and 512 and the packed gallery
    kernel (with the probe uploaded whole and, on a ``packed-probe`` backend, packed and expanded),
    against numpy: the failures, each naming the case.

    Keys come from the plugin's ``_generate`` hook, past the core's parameter checks, so the
    suite measures what the library computes for any chain, including one the core refuses."""
    steps = set(power_of_two_steps(512)) | set(backend_class.key_steps(params, 32))
    backend = backend_class._generate(params, secrets.token_hex(8), sorted(steps))
    rng = np.random.default_rng(20261127)
    failures: list[str] = []

    def compare(got: np.ndarray, want: np.ndarray, what: str) -> None:
        err = float(np.max(np.abs(got - want) / np.maximum(1.0, np.abs(want))))
        if not err <= tol:
            failures.append(f"{what}: error {err:.3g} > {tol:g}")

    for metric in PROTOCOLS:
        p = protocol_for(backend, metric)
        for dim in (128, 512):
            for case, (a, b) in _cases(p, dim, params.result_limit, rng).items():
                pa, pb = p.prepare(a), p.prepare_probe(b)
                ct = p.encrypted(backend, backend.encrypt(pa), backend.encrypt_probe(pb), pa.size)
                compare(backend.decrypt(ct, 1)[:1], np.array([p.plaintext(pa, pb)]), f"{metric} d={dim} {case}")
        for layout in layouts.possible(backend):  # the packed gallery kernel in each layout it can store
            _gallery_cases(backend, p, metric, layout, rng, compare)
    return failures


def _within(p: DistanceProtocol, v: np.ndarray, limit: float) -> np.ndarray:
    """``v``, scaled down (the metrics' bounds are quadratic in the norm) if its results could pass
    ``limit`` (a layout's smaller one)."""
    bound = p.result_bound(float(np.linalg.norm(p.prepare(v))))
    return v if bound <= limit else v * np.sqrt(limit / bound) * (1 - 1e-6)


def _gallery_cases(backend: FHEBackend, p: DistanceProtocol, metric: str, layout: int, rng, compare) -> None:
    """The packed gallery kernel (d=32 keeps it quick) in one layout: identities, one as large as
    the layout allows, against whole and packed probes brought to the blocks' level."""
    limit = layouts.result_limit(layout, backend)
    cases = {case: (_within(p, a, limit), _within(p, b, limit)) for case, (a, b) in _cases(p, 32, limit, rng).items()}
    gallery = [cases["random"][0], cases["one_hot"][0], cases["largest_spread"][0], cases["tiny"][0]]
    slots = [(0, s) for s in (0, 1, 7, backend.slot_count - 1)]
    block = np.zeros((len(p.gallery_row(gallery[0])), backend.slot_count))
    rows = np.array([p.gallery_row(g) for g in gallery])
    block[:, [s for _, s in slots]] = rows.T
    blobs = encrypt_block(backend, block, 0, layout)
    columns = [backend.load_ciphertext(x, kind=envelope.GALLERY_BLOCK)[0] for x in blobs]
    for case, packed in (("random", False), ("largest_spread", False), ("random", None), ("largest_spread", None)):
        probe_blobs, probe_row, offset = encrypt_probe(backend, p, cases[case][1], packed=packed, limit=limit)
        if packed is None and len(probe_blobs) > 1:
            continue  # the backend does not pack: the whole probe was tested already
        probe = at_level(backend, probe_components(backend, probe_blobs, len(probe_row)), layouts.DEPTH[layout])
        scored = backend.inner_product(columns, probe)
        result = backend.dump_for_decryption(scored, error=SCORE_ROUNDING, meta={"block": 0})  # as the scan does
        scores = decrypt_scores(backend, result)[1][[s for _, s in slots]] + offset
        want = np.array([p.plaintext(p.prepare(g), p.prepare_probe(cases[case][1])) for g in gallery])
        if DISTANCE_PRESERVING in backend.capabilities:  # each preparation is a fresh encryption
            want = rows @ probe_row + offset
        where = f" ({layouts.NAMES[layout]})" if layout != layouts.TWO_PRIMES else ""
        compare(scores, want, f"{metric} gallery d=32 probe {case}{' packed' if packed is None else ''}{where}")


def needs(*capabilities: str | tuple[str, ...]):
    """Mark a test as needing backend capabilities (``cipherface.capabilities``; a tuple: any one
    of them): skipped, naming them, on a backend that does not declare them."""

    def mark(test):
        test.needs = capabilities
        return test

    return mark


class _Fixtures:
    """Fixtures every capability class shares; override ``backend_class`` (required)."""

    @pytest.fixture(scope="class")
    @classmethod
    def backend_class(cls) -> type[FHEBackend]:
        raise NotImplementedError("override the `backend_class` fixture to return your FHEBackend subclass")

    @pytest.fixture(scope="class")
    @classmethod
    def preset(cls, backend_class) -> str:
        return default_preset(backend_class.scheme)

    @pytest.fixture(scope="class")
    @classmethod
    def protocol_tolerance(cls) -> float:
        return PROTOCOL_TOLERANCE

    @pytest.fixture(scope="class")
    @classmethod
    def extra_parameter_sets(cls) -> dict[str, SchemeParams]:
        """Parameter sets to check beside the presets (``cipherface conformance --params``)."""
        return {}

    @pytest.fixture(scope="class")
    @classmethod
    def plain(cls, backend_class):
        """Test data as the backend computes on it: reals (approximate arithmetic) or integers
        (exact arithmetic: the reals times ``EXACT_TEST_SCALE``, rounded)."""
        exact = EXACT in backend_class.capabilities

        def encode(x):
            arr = np.asarray(x, dtype=np.float64)
            return np.round(arr * EXACT_TEST_SCALE) if exact else arr

        return encode

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

    @pytest.fixture(autouse=True)
    def _declared_capabilities(self, request, backend_class) -> None:
        """Skip, naming it, a test of a capability the backend does not declare."""
        name = request.function.__name__
        # the capability class that defines the test (BackendConformance inherits from all of them)
        owner = next((c for c in type(self).__mro__ if name in vars(c)), type(self))
        wanted = set(vars(owner).get("needs", ())) | set(getattr(request.function, "needs", ()))
        have = set(backend_class.capabilities)
        missing = sorted(
            " or ".join(w) if isinstance(w, tuple) else w
            for w in wanted
            if not (set(w) if isinstance(w, tuple) else {w}) & have
        )
        if missing:
            pytest.skip(f"backend {backend_class.name!r} does not declare capability {', '.join(missing)}")
