"""The compact probe option measured (issue 12): one ciphertext holding a probe's d values in its
coefficients, expanded by the matcher into the d replicated ciphertexts the packed gallery's scan
multiplies, beside today's upload of d replicated ciphertexts.

    python bench/probe_expansion.py [--dims 128,512] [--no-write]

The key owner encodes the probe row p as the polynomial Σ p_k X^k / 2^L (L = ⌈log2 d⌉) and encrypts
it once with its secret key (seeded). The matcher runs L rounds of SealPIR's expansion: for each
ciphertext c, c' = c(X^(N/2^j + 1)) (a Galois automorphism), then c + c' keeps the terms of one
parity and (c − c')·X^(−2^j) the other, shifted down; after L rounds ciphertext k holds p_k as its
constant term, which CKKS decodes as p_k in every slot. 2^L − 1 automorphisms and L Galois keys.
Plain SEAL through ``tenseal.sealapi`` (N=8192, [60, 40, 40, 60], 2^40), at the level the scan
multiplies at. Writes the ``probe-expansion`` section of docs/gallery.md.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import tenseal.sealapi as seal
from report import machine, table, write_section

from cipherface.backend import power_of_two_steps
from cipherface.capabilities import protocol_for
from cipherface.gallery.packing import encrypt_probe
from cipherface.plugins import get_backend

DOC = Path(__file__).resolve().parents[1] / "docs" / "gallery.md"
N, SCALE = 8192, 2.0**40
HEADER = [
    "d",
    "today: d replicated ciphertexts",
    "compact: one packed ciphertext",
    "automorphisms",
    "expansion (matcher, per scanning process)",
    "max error",
    "extra Galois keys",
]


def saved_bytes(obj) -> int:
    fd, path = tempfile.mkstemp()
    os.close(fd)
    try:
        obj.save(path)
        return os.path.getsize(path)
    finally:
        os.remove(path)


class Expansion:
    """SEAL keys and the expansion of one packed probe for 2^levels values."""

    def __init__(self, levels: int) -> None:
        parms = seal.EncryptionParameters(seal.SCHEME_TYPE.CKKS)
        parms.set_poly_modulus_degree(N)
        parms.set_coeff_modulus(seal.CoeffModulus.Create(N, [60, 40, 40, 60]))
        self.ctx = seal.SEALContext(parms, True, seal.SEC_LEVEL_TYPE.TC128)
        keygen = seal.KeyGenerator(self.ctx)
        self.levels = levels
        self.elements = [N // (1 << j) + 1 for j in range(levels)]
        self.galois = seal.GaloisKeys()
        keygen.create_galois_keys(self.elements, self.galois)
        public = seal.PublicKey()
        keygen.create_public_key(public)
        self.encryptor = seal.Encryptor(self.ctx, public)
        self.encryptor.set_secret_key(keygen.secret_key())
        self.decryptor = seal.Decryptor(self.ctx, keygen.secret_key())
        self.evaluator = seal.Evaluator(self.ctx)
        self.encoder = seal.CKKSEncoder(self.ctx)
        # the level the scan multiplies at: one below the top of the data primes
        self.parms_id = self.ctx.get_context_data(self.ctx.first_parms_id()).next_context_data().parms_id()
        # SEAL's CKKS slot i is the polynomial evaluated at ζ^(3^i), ζ = exp(iπ/N)
        self.roots = np.array([pow(3, i, 2 * N) for i in range(N // 2)])
        self.monomials = [self._plain(self._monomial(N - (1 << j), -1.0), 1.0) for j in range(levels)]

    def _monomial(self, k: int, c: float) -> np.ndarray:
        coeffs = np.zeros(k + 1)
        coeffs[k] = c
        return coeffs

    def _plain(self, coeffs: np.ndarray, scale: float):
        k = np.arange(len(coeffs))
        slots = np.exp(1j * np.pi * np.outer(self.roots, k) / N) @ coeffs
        plain = seal.Plaintext()
        self.encoder.encode(list(slots), self.parms_id, scale, plain)
        return plain

    def encrypt(self, values: np.ndarray):
        return self.encryptor.encrypt_symmetric(self._plain(values / (1 << self.levels), SCALE))

    def expand(self, ct) -> list:
        out = [ct]
        for j, element in enumerate(self.elements):
            evens, odds = [], []
            for c in out:
                image = seal.Ciphertext()
                self.evaluator.apply_galois(c, element, self.galois, image)
                even, odd = seal.Ciphertext(), seal.Ciphertext()
                self.evaluator.add(c, image, even)
                self.evaluator.sub(c, image, odd)
                self.evaluator.multiply_plain_inplace(odd, self.monomials[j])
                evens.append(even)
                odds.append(odd)
            out = evens + odds
        return out

    def first_slot(self, ct) -> float:
        plain = seal.Plaintext()
        self.decryptor.decrypt(ct, plain)
        return float(self.encoder.decode_double(plain)[0])


def measure(dim: int, repeat: int, rng) -> list[object]:
    levels = max(dim - 1, 0).bit_length()
    ex = Expansion(levels)
    values = rng.normal(size=dim) / np.sqrt(dim)
    packed = ex.encrypt(values)
    upload = saved_bytes(packed)  # seeded: the random half is a seed
    ct = seal.Ciphertext()
    fd, path = tempfile.mkstemp()
    os.close(fd)
    packed.save(path)
    ct.load(ex.ctx, path)
    os.remove(path)
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        expanded = ex.expand(ct)
        times.append(time.perf_counter() - start)
    got = np.array([ex.first_slot(c) for c in expanded[:dim]])
    # today's probe: d replicated, seeded ciphertexts from the TenSEAL backend at the same level
    backend = get_backend("tenseal").generate(None, rotation_steps=power_of_two_steps(2))
    blobs, _, _ = encrypt_probe(backend, protocol_for(backend, "cosine", gallery=True), rng.normal(size=dim))
    return [
        dim,
        f"{sum(map(len, blobs)) / 1e6:.1f} MB",
        f"{upload / 1e3:.0f} KB",
        2**levels - 1,
        f"{statistics.median(times):.2f} s",
        f"{np.max(np.abs(got - values)):.1e}",
        f"{saved_bytes(ex.galois) / 1e6:.1f} MB",
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dims", default="128,512")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    rows = []
    for dim in map(int, args.dims.split(",")):
        rows.append(measure(dim, args.repeat, rng))
        print(" | ".join(map(str, rows[-1])), flush=True)
    text = f"Machine: {machine()} (`bench/probe_expansion.py`, one thread, median of {args.repeat}).\n\n" + table(
        HEADER, rows
    )
    if not args.no_write:
        write_section("probe-expansion", text, DOC)


if __name__ == "__main__":
    main()
