"""1:1 encrypted distance: cipherface's backends beside the reference design, in one run.

Reference design: one TenSEAL ``ckks_vector`` per embedding, N=8192, coeff
[60,40,40,60], scale 2^40, all Galois keys; distance as ``(a-b).dot(a-b)`` and
``a.dot(b)``.  cipherface: the same preset through each backend plugin, with the
Galois keys for the embedding length only.

    python bench/bench_pairwise.py [--repeat 20] [--no-write]
"""

from __future__ import annotations

import argparse

import numpy as np
import tenseal as ts
from report import machine, median_ms, table, write_section

from cipherface.backend import power_of_two_steps
from cipherface.plugins import get_backend, get_protocol

DIMS = (128, 512, 4096)


def reference(d: int, repeat: int, rng) -> dict[str, float]:
    keygen = median_ms(lambda: _ref_context(), max(2, repeat // 5))
    ctx = _ref_context()
    a, b = rng.normal(size=d) * 0.1, rng.normal(size=d) * 0.1
    ea, eb = ts.ckks_vector(ctx, a), ts.ckks_vector(ctx, b)
    public = ctx.copy()
    public.make_context_public()
    return {
        "keygen_ms": keygen,
        "encrypt_ms": median_ms(lambda: ts.ckks_vector(ctx, a), repeat),
        "euclidean_ms": median_ms(lambda: (ea - eb).dot(ea - eb), repeat),
        "cosine_ms": median_ms(lambda: ea.dot(eb), repeat),
        "decrypt_ms": median_ms(lambda: ea.decrypt(), repeat),
        "ciphertext_kb": len(ea.serialize()) / 1e3,
        "public_mb": len(public.serialize()) / 1e6,
        "error": abs((ea - eb).dot(ea - eb).decrypt()[0] - float((a - b) @ (a - b))),
    }


def _ref_context():
    ctx = ts.context(ts.SCHEME_TYPE.CKKS, 8192, coeff_mod_bit_sizes=[60, 40, 40, 60])
    ctx.global_scale = 2**40
    ctx.generate_galois_keys()
    return ctx


def cipherface_backend(name: str, d: int, repeat: int, rng) -> dict[str, float]:
    cls = get_backend(name)
    steps = power_of_two_steps(d)
    keygen = median_ms(lambda: cls.generate("n8192-s128", rotation_steps=steps), max(2, repeat // 5))
    backend = cls.generate("n8192-s128", rotation_steps=steps)
    euc, cos = get_protocol("euclidean"), get_protocol("cosine")
    a, b = rng.normal(size=d) * 0.1, rng.normal(size=d) * 0.1
    ea, eb = backend.encrypt(a), backend.encrypt(b)
    na, nb = cos.prepare(a), cos.prepare(b)
    ca, cb = backend.encrypt(na), backend.encrypt(nb)
    result = euc.encrypted(backend, ea, eb, d)
    return {
        "keygen_ms": keygen,
        "encrypt_ms": median_ms(lambda: backend.encrypt(a), repeat),
        "euclidean_ms": median_ms(lambda: euc.encrypted(backend, ea, eb, d), repeat),
        "cosine_ms": median_ms(lambda: cos.encrypted(backend, ca, cb, d), repeat),
        "decrypt_ms": median_ms(lambda: backend.decrypt(result, 1), repeat),
        "ciphertext_kb": len(backend.dump_ciphertext(ea)) / 1e3,
        "public_mb": len(backend.export_public_bundle()) / 1e6,
        "error": abs(backend.decrypt(result, 1)[0] - euc.plaintext(a, b)),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--no-write", action="store_true", help="print only; leave docs/benchmarks.md alone")
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    rows = []
    for d in DIMS:
        for label, backend in (
            ("reference (TenSEAL ckks_vector)", None),
            ("cipherface tenseal", "tenseal"),
            ("cipherface pyfhel", "pyfhel"),
            ("cipherface seal", "seal"),
        ):
            r = reference(d, args.repeat, rng) if backend is None else cipherface_backend(backend, d, args.repeat, rng)
            rows.append(
                [
                    d,
                    label,
                    f"{r['keygen_ms']:.0f}",
                    f"{r['encrypt_ms']:.2f}",
                    f"{r['euclidean_ms']:.2f}",
                    f"{r['cosine_ms']:.2f}",
                    f"{r['decrypt_ms']:.2f}",
                    f"{r['ciphertext_kb']:.0f}",
                    f"{r['public_mb']:.1f}",
                    f"{r['error']:.1e}",
                ]
            )
            print(" | ".join(str(c) for c in rows[-1]), flush=True)
    md = table(
        [
            "d",
            "implementation",
            "keygen ms",
            "encrypt ms",
            "enc. euclidean d² ms",
            "enc. cosine ms",
            "decrypt ms",
            "ciphertext KB",
            "public bundle MB",
            "abs error d²",
        ],
        rows,
    )
    text = (
        "## 1:1 encrypted distance (`bench/bench_pairwise.py`)\n\n"
        f"Machine: {machine()}. Medians of {args.repeat} runs, one thread, N=8192, "
        "coeff [60,40,40,60], scale 2^40 for all rows. Reference = one TenSEAL `ckks_vector` per embedding with "
        "every Galois key; cipherface rows hold only the Galois keys for the embedding length "
        "(`cipherface keygen --max-dim d`; the default key set, any length, is 18.6 MB for TenSEAL).\n\n" + md
    )
    if not args.no_write:
        write_section("pairwise", text)
    print(text)


if __name__ == "__main__":
    main()
