"""1:N identification: the packed encrypted gallery against the per-pair reference design.

One gallery grows through the sizes (1k, 10k, 100k, 1M identities by default); at
each size it measures enrolment rate, bytes per identity on disk and in memory,
query latency (p50/p95: probe encryption + encrypted scan + decryption and ranking),
comparisons per second of the scan, and agreement of the top-1 identity and the
accept/reject decision with plaintext numpy.  The reference design (one TenSEAL
``ckks_vector`` per identity, ``(g-p).dot(g-p)`` per pair) runs in the same process
on the sizes where it finishes in reasonable time.

    python bench/bench_gallery.py [--sizes 1000,10000,100000,1000000] [--dim 128]
                                  [--workers 2] [--queries 20] [--reference-sizes 1000,10000]
                                  [--layouts last-prime,two-primes]
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import tenseal as ts
from report import DOC, machine, peak_rss_gb, table, write_section

from cipherface.gallery import encrypt_probe
from cipherface.gallery import layout as layouts
from cipherface.identification import Identifier


def unit_rows(rng, n, d):
    x = rng.normal(size=(n, d)).astype(np.float64)
    return x / np.linalg.norm(x, axis=1, keepdims=True) * 0.5


def plaintext_top1(matrix, probe, cutoff):
    g = matrix / np.linalg.norm(matrix, axis=1, keepdims=True)
    values = 1 - g @ (probe / np.linalg.norm(probe))
    best = int(np.argmin(values))
    return best, bool(values[best] <= cutoff)


def reference_query_seconds(vectors, probe) -> float:
    """One query of the reference design: every identity its own ckks_vector, one dot per pair."""
    ctx = ts.context(ts.SCHEME_TYPE.CKKS, 8192, coeff_mod_bit_sizes=[60, 40, 40, 60])
    ctx.global_scale = 2**40
    ctx.generate_galois_keys()
    gallery = [ts.ckks_vector(ctx, v) for v in vectors]
    enc_probe = ts.ckks_vector(ctx, probe)
    start = time.perf_counter()
    for g in gallery:
        diff = g - enc_probe
        diff.dot(diff)
    return time.perf_counter() - start


def grown(ident: Identifier, vectors: np.ndarray, sizes: list[int]) -> Iterator[tuple[int, float]]:
    """Enrol ``vectors`` as id0, id1, ... up to each size in turn: (size, identities/s of that step)."""
    enrolled = 0
    for n in sizes:
        start = time.perf_counter()
        ident.enroll([f"id{i}" for i in range(enrolled, n)], list(vectors[enrolled:n]), progress=True)
        rate = (n - enrolled) / (time.perf_counter() - start)
        enrolled = n
        yield n, rate


LAYOUTS = {"last-prime": layouts.LAST_PRIME, "two-primes": layouts.TWO_PRIMES}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="1000,10000,100000,1000000")
    parser.add_argument("--dim", type=int, default=128)
    parser.add_argument("--backend", default="tenseal")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument(
        "--resident-blocks", type=int, default=None, help="blocks kept in memory per scan process (default all)"
    )
    parser.add_argument("--queries", type=int, default=20)
    parser.add_argument("--reference-sizes", default="1000,10000")
    parser.add_argument(
        "--layouts", default="last-prime,two-primes", help="gallery layouts to measure, each its own gallery"
    )
    parser.add_argument("--section", default=None, help="docs/benchmarks.md section (default gallery-dD)")
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    ref_sizes = {int(s) for s in args.reference_sizes.split(",") if s}
    vectors = unit_rows(np.random.default_rng(2026), max(sizes), args.dim)
    rows, plot, refs = [], {}, {}
    for name in args.layouts.split(","):
        plot[name] = measure(args, LAYOUTS[name], vectors, sizes, ref_sizes, refs, rows)
    md = table(
        [
            "layout",
            "N",
            "query p50 s",
            "query p95 s",
            "scan s (median)",
            "scan cmp/s",
            "enrol id/s",
            "disk B/id",
            "memory B/id",
            "scan peak RSS GB",
            "probe up MB",
            "scores down MB",
            "top-1 + decision = plaintext",
            "reference per-pair query",
        ],
        rows,
    )
    section = args.section or f"gallery-d{args.dim}"
    png = DOC.parent / f"{section}.png"
    _plot(plot, refs, png, args.dim)
    text = (
        f"## 1:N identification, d={args.dim} (`bench/bench_gallery.py`)\n\n"
        f"Machine: {machine()}. Backend `{args.backend}`, preset n8192-s128, cosine, "
        f"{args.workers} scan processes, {args.queries} queries per size (half noisy copies of enrolled "
        "identities, half strangers), one gallery per layout (docs/gallery.md: blocks at the last prime, or at two "
        "primes as before), in the same run. Query = key owner encrypts the probe (one packed ciphertext), matcher "
        "expands it and scans every block, key owner decrypts and ranks. Disk = gallery file (with its public "
        "bundle) / N; "
        "memory = deserialised blocks / N (or the blocks kept resident, the rest streamed from the store at every "
        "scan); peak RSS = the scanning processes' high-water mark; probe up / scores down = what one query sends to "
        "the matcher and gets back (one encrypted score block per gallery block). Reference = one TenSEAL "
        "`ckks_vector` per identity, `(g-p).dot(g-p)` per pair, one query, same run.\n\n"
        + md
        + f"\n\n![scan time against gallery size]({png.name})\n"
    )
    if not args.no_write:
        write_section(section, text)
    print(text)


def measure(args, layout: int, vectors, sizes, ref_sizes, refs, rows) -> dict[str, list]:
    """Grow one gallery of ``layout`` through ``sizes``, appending a table row per size."""
    rng = np.random.default_rng(2027)  # the same queries for every layout
    workdir = Path(tempfile.mkdtemp(prefix="cipherface-bench-"))
    plot = {"n": [], "scan": []}
    try:
        ident = Identifier.open(
            workdir / "g.db",
            workdir / "keys",
            create=True,
            backend=args.backend,
            metric="cosine",
            dim=args.dim,
            layout=layout,
        )
        ident.gallery.bound_memory(args.resident_blocks)
        cutoff = ident.protocol.cutoff(0.07)
        primes = 1 if ident.layout == layouts.LAST_PRIME else 2
        for n, enrol_rate in grown(ident, vectors, sizes):
            info = ident.gallery.info()
            blocks, width = info["blocks"], info["width"]
            memory = blocks * width * 2 * 8192 * primes * 8  # resident: 2 polynomials x primes x N x 8 bytes
            ident.identify(vectors[0], workers=args.workers)  # warm-up: workers load this state
            # what one query moves: the probe up, the encrypted score blocks down
            probe_blobs, _, _ = encrypt_probe(ident.owner.backend, ident.protocol, vectors[0])
            _, results = ident.gallery.scan(probe_blobs, workers=args.workers)
            upload, download = sum(map(len, probe_blobs)) / 1e6, sum(map(len, results)) / 1e6
            latencies, scans, agree = [], [], 0
            for q in range(args.queries):
                if q % 2 == 0:
                    target = int(rng.integers(n))
                    probe = vectors[target] + rng.normal(size=args.dim) * 0.02
                else:
                    probe = unit_rows(rng, 1, args.dim)[0]
                start = time.perf_counter()
                result = ident.identify(probe, top_k=1, workers=args.workers)
                latencies.append(time.perf_counter() - start)
                scans.append(result.timings_ms["encrypted_scan"] / 1000)
                best, accept = plaintext_top1(vectors[:n], probe, cutoff)
                agree += (result.candidates[0].name, result.candidates[0].accepted) == (f"id{best}", accept)
            scan = float(np.median(scans))
            pool = ident.gallery._pool  # the gallery's own scan processes (workers > 1)
            peak = peak_rss_gb(pool.pids() if pool is not None else [os.getpid()])
            if n in ref_sizes and n not in refs:
                refs[n] = reference_query_seconds(vectors[:n], vectors[0])
            ref = refs.get(n)
            row = [
                layouts.NAMES[ident.layout],
                f"{n:,}",
                f"{np.percentile(latencies, 50):.2f}",
                f"{np.percentile(latencies, 95):.2f}",
                f"{scan:.2f}",
                f"{n / scan:,.0f}",
                f"{enrol_rate:,.0f}",
                f"{info['file_bytes'] / n:,.0f}",
                f"{memory / n:,.0f}" if args.resident_blocks is None else f"{args.resident_blocks} blocks resident",
                f"{peak:.2f}",
                f"{upload:.2f}",
                f"{download:.2f}",
                f"{agree}/{args.queries}",
                f"{ref:.1f} s ({n / ref:,.0f} cmp/s)" if ref else "not run",
            ]
            rows.append(row)
            plot["n"].append(n)
            plot["scan"].append(scan)
            print(" | ".join(row), flush=True)
        ident.close()
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return plot


def _plot(data, refs, png: Path, dim: int) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for name, series in data.items():
        ax.loglog(series["n"], series["scan"], "o-", label=f"cipherface packed gallery, {name} (encrypted scan)")
    ref = sorted(refs.items())
    if ref:
        ax.loglog(*zip(*ref), "s--", label="reference: one ckks_vector per identity")
        rate = ref[-1][0] / ref[-1][1]
        sizes = sorted({n for series in data.values() for n in series["n"]})
        ax.loglog(sizes, [n / rate for n in sizes], ":", color="gray", label="reference, extrapolated")
    ax.set(xlabel="identities in the gallery", ylabel="seconds per query scan", title=f"1:N encrypted search, d={dim}")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(png, dpi=90)
    plt.close(fig)


if __name__ == "__main__":
    main()
