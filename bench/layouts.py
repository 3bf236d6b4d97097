"""The packed gallery's two layouts side by side on one block: bytes, scan time, error.

    python bench/layouts.py [--dims 128,512] [--repeat 5] [--no-write]

For each layout (blocks at two primes, or at the last prime: docs/gallery.md), one block of
4,096 random unit-norm identities is encrypted with the TenSEAL backend (n8192-s128, seeded);
a packed probe is expanded and brought to the block's level; the block is scored with the native
kernel (and with SEAL's evaluator, ``CIPHERFACE_NATIVE_KERNEL=0``), and the decrypted scores are
compared with numpy's. Writes the ``layouts`` section of docs/gallery.md.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from pathlib import Path

import numpy as np
from report import machine, table, write_section

from cipherface import KeyOwner, envelope
from cipherface.capabilities import protocol_for
from cipherface.gallery import layout as layouts
from cipherface.gallery.packing import decrypt_scores, encrypt_block, encrypt_probe
from cipherface.gallery.scan import at_level, probe_components

DOC = Path(__file__).resolve().parents[1] / "docs" / "gallery.md"


def timed(fn, repeat: int) -> float:
    fn()
    samples = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - start)
    return statistics.median(samples) * 1000


def measure(backend, dim: int, layout: int, repeat: int, rng) -> list[str]:
    p = protocol_for(backend, "cosine", gallery=True)
    rows = rng.normal(size=(backend.slot_count, dim))
    rows /= np.linalg.norm(rows, axis=1, keepdims=True)
    probe = rng.normal(size=dim)
    kept = layouts.stored_values(layout, backend, rows.T)  # what the key owner stores (grid at the last prime)
    start = time.perf_counter()
    blobs = encrypt_block(backend, kept, 0, layout)
    encrypt_ms = (time.perf_counter() - start) * 1000
    public = backend.public_copy()
    cts = [public.load_ciphertext(b, kind=envelope.GALLERY_BLOCK)[0] for b in blobs]
    probe_blobs, probe_row, offset = encrypt_probe(backend, p, probe)
    components = probe_components(public, probe_blobs, dim)
    bring_ms = timed(lambda: at_level(public, components, layouts.DEPTH[layout]), 1)
    brought = at_level(public, components, layouts.DEPTH[layout])
    out = []
    for native in ("1", "0"):
        os.environ["CIPHERFACE_NATIVE_KERNEL"] = native
        block, operand = public.scan_operand(cts), public.scan_operand(brought)
        out.append(timed(lambda a=block, b=operand: public.scan_inner_product(a, b), repeat))
    os.environ.pop("CIPHERFACE_NATIVE_KERNEL")
    result = public.dump_ciphertext(public.scan_inner_product(block, operand), kind=envelope.RESULT, meta={"block": 0})
    scores = decrypt_scores(backend, result)[1] + offset
    error = float(np.max(np.abs(scores - (kept.T @ probe_row + offset))))
    total = float(np.max(np.abs(scores - (rows @ probe_row + offset))))
    return [
        str(dim),
        layouts.NAMES[layout],
        f"{np.mean([len(b) for b in blobs]) / 1024:.1f} KB",
        f"{sum(map(len, blobs)) / (backend.slot_count - 8) / 1024:.2f} KB",
        f"{encrypt_ms / len(blobs):.1f} ms",
        f"{bring_ms:.0f} ms",
        f"{out[0]:.1f} ms",
        f"{out[1]:.1f} ms",
        f"{len(result) / 1024:.0f} KB",
        f"{error:.1e}",
        f"{total:.1e}",
        f"±{layouts.result_limit(layout, backend):g}",
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dims", default="128,512")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    backend = KeyOwner.generate("tenseal").backend
    rng = np.random.default_rng(7)
    rows = [
        measure(backend, int(d), layout, args.repeat, rng)
        for d in args.dims.split(",")
        for layout in (layouts.TWO_PRIMES, layouts.LAST_PRIME)
    ]
    header = [
        "d",
        "layout",
        "block ciphertext (seeded)",
        "stored per identity",
        "encrypt per ciphertext",
        "bring the probe to the level (per query)",
        "score a block: native kernel",
        "score a block: SEAL's evaluator",
        "score ciphertext",
        "max encryption error of 4,096 cosine distances",
        "max error against the float templates",
        "results within",
    ]
    text = (
        f"Machine: {machine()} (`bench/layouts.py`, TenSEAL n8192-s128, one "
        f"block of 4,096 random unit-norm identities, a packed probe expanded and brought to the block's level, "
        f"median of {args.repeat}, one process).\n\n" + table(header, rows)
    )
    print(text)
    if not args.no_write:
        write_section("layouts", text, DOC)


if __name__ == "__main__":
    main()
