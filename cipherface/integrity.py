"""Canaries: secret values the key owner plants beside the data it encrypts.

The key owner derives them from its integrity key (in the secret bundle, never in the
public one) and a random nonce that travels in the blob's header. A matcher that
computes honestly carries them through the same computation as the data; a result it
forged from the public key, took from another comparison, or garbled cannot hold them,
because it never sees their values. The key owner recomputes them and refuses a result
whose canary slots do not match before it looks at the distance.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from typing import Any

import numpy as np

from cipherface.errors import IntegrityError

#: Canary slots per 1:1 ciphertext; a forger must hit each to ~1e-4.
CANARY_SLOTS = 4
#: How far a decrypted canary may be from its expected value (CKKS noise is ~1e-6).
CANARY_TOLERANCE = 1e-4
_NONCE = re.compile(r"[0-9a-f]{32}")


def canaries_fit(window: int, slot_count: int) -> bool:
    """Whether canaries fit behind a summed window of ``window`` slots: every canary slot's own
    window must end before the ciphertext wraps back onto the embedding."""
    return 2 * window + CANARY_SLOTS - 1 <= slot_count


def new_nonce() -> str:
    return secrets.token_hex(16)


def canary_values(key: bytes, nonce: str, count: int = CANARY_SLOTS) -> np.ndarray:
    """``count`` reals in [-1, 1] that only the holder of ``key`` can compute for ``nonce``."""
    digest = hmac.new(key, b"cipherface canary\0" + nonce.encode(), hashlib.sha256).digest()
    return np.random.default_rng(int.from_bytes(digest, "big")).uniform(-1.0, 1.0, count)


def checked_nonce(value: Any, what: str) -> str:
    if not isinstance(value, str) or not _NONCE.fullmatch(value):
        raise IntegrityError(f"{what} carries no valid canary nonce (got {str(value)[:40]!r}): refused")
    return value


def check_canaries(actual: np.ndarray, expected: np.ndarray, what: str) -> None:
    """Refuse a result whose canary slots do not hold what the key owner planted."""
    error = float(np.max(np.abs(np.asarray(actual) - expected)))
    if not error <= CANARY_TOLERANCE:  # also catches NaN
        raise IntegrityError(
            f"{what}: its canary slots differ from what the key owner planted (error {error:.3g}): it was "
            "forged, taken from another comparison, or corrupted; nothing was decided"
        )
