"""The TenSEAL backend's native scan kernel (capability ``native-inner-product``).

SEAL's evaluator allocates a ciphertext and reduces modulo each prime after every product; the
packed gallery's scan is d such products per block, so most of its time went there. ``mac.c``
accumulates a block's d products in 128-bit integers instead (reducing once per 32 terms), on the
residues of the ciphertexts as SEAL lays them out (polynomial, prime, coefficient; NTT form). The
result is handed back to SEAL, which relinearises and rescales it, so what leaves the matcher is an
ordinary SEAL ciphertext (equal, bit for bit, to the one SEAL's own products give).

The residues are read from what SEAL itself serialises (never from bytes the matcher received:
those are loaded by SEAL first), and the result is given to SEAL in its serialisation format.
The library is compiled once per source by the C compiler (``cc``) into a cache folder; without a
compiler the backend scans with SEAL's evaluator, as every backend without the capability does.
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from cipherface_tenseal import seal_format

SOURCE = Path(__file__).with_name("mac.c")
_library: list[ctypes.CDLL | None] = []


def cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "cipherface" / "kernels"


def build() -> Path:
    """Compile ``mac.c`` (once per source: the file is named after its hash) and return the library."""
    source = SOURCE.read_bytes()
    target = cache_dir() / f"mac-{hashlib.sha256(source).hexdigest()[:16]}.so"
    if target.is_file():
        return target
    compiler = os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc")
    if compiler is None:
        raise OSError("no C compiler (cc) to build the native scan kernel")
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(suffix=".so", dir=target.parent)
    os.close(fd)
    try:
        subprocess.run([compiler, "-O3", "-shared", "-fPIC", "-o", tmp, str(SOURCE)], check=True, capture_output=True)
        os.replace(tmp, target)  # atomic: concurrent builds leave one whole library
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return target


def library() -> ctypes.CDLL | None:
    """The compiled kernel (built on first use), or None, with a warning, where it cannot be built;
    None too when ``CIPHERFACE_NATIVE_KERNEL=0`` (to compare with SEAL's own products)."""
    if os.environ.get("CIPHERFACE_NATIVE_KERNEL") == "0":
        return None
    if not _library:
        try:
            lib = ctypes.CDLL(str(build()))
            lib.cf_mac.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int, ctypes.c_int]
            lib.cf_mac.argtypes += [ctypes.c_void_p, ctypes.c_void_p]
            lib.cf_mac.restype = None
            _library.append(lib)
        except (OSError, subprocess.CalledProcessError) as exc:
            warnings.warn(
                f"cipherface-tenseal: native scan kernel unavailable ({exc}); scanning with SEAL", stacklevel=2
            )
            _library.append(None)
    return _library[0]


@dataclass(frozen=True)
class Operand:
    """Ciphertexts of size 2 at one level and scale, as residue arrays (2 x primes x N each)."""

    parms_id: bytes
    moduli: np.ndarray  # the primes of that level
    scale: float
    version: tuple[int, int]
    arrays: tuple[np.ndarray, ...]
    pointers: ctypes.Array


def operand(serialised: list[bytes], moduli: np.ndarray) -> Operand | None:
    """The residues of SEAL-serialised ciphertexts (``Ciphertext.save``'s output), or None when they
    are not all of size 2, in NTT form, at one level and one scale (the kernel's case)."""
    arrays, first = [], None
    for raw in serialised:
        parsed = seal_format.body(raw)
        if parsed is None:
            return None
        (_, _, major, minor, _, _, _), body = parsed
        parms_id, ntt, size, n, primes, scale, correction = seal_format.MEMBERS.unpack_from(body)
        key = (parms_id, ntt, size, n, primes, scale, correction, major, minor)
        if first is None:
            first = key
        if key != first or size != 2 or not ntt or correction != 1:
            return None
        offset = seal_format.MEMBERS.size + seal_format.HEADER.size + 8  # the data array's own header and length
        residues = np.frombuffer(body, dtype=np.uint64, offset=offset, count=2 * primes * n)
        arrays.append(residues.reshape(2, primes, n).copy())  # aligned (the offset is not), and its own
    if first is None:
        return None
    pointers = (ctypes.c_void_p * len(arrays))(*[a.ctypes.data for a in arrays])
    if len(moduli) != first[4]:
        return None
    return Operand(first[0], moduli, first[5], (first[7], first[8]), tuple(arrays), pointers)


def inner_product(lib: ctypes.CDLL, a: Operand, b: Operand) -> bytes | None:
    """Σᵢ aᵢ·bᵢ (unrelinearised, size 3) as a SEAL-serialised ciphertext, or None when the operands
    do not fit together (another level or shape: the caller uses SEAL)."""
    if a.parms_id != b.parms_id or len(a.arrays) != len(b.arrays) or a.arrays[0].shape != b.arrays[0].shape:
        return None
    _, primes, n = a.arrays[0].shape
    out = np.empty((3, primes, n), dtype=np.uint64)
    lib.cf_mac(len(a.arrays), a.pointers, b.pointers, primes, n, a.moduli.ctypes.data, out.ctypes.data)
    return seal_format.ciphertext(a.version, a.parms_id, True, a.scale * b.scale, out)


if __name__ == "__main__":  # set-up builds it: python -m cipherface_tenseal.kernel
    print(build())
    sys.exit(0 if library() is not None else 1)
