"""The matcher's scan on one machine and on a Dask cluster: 1 and 2 workers against the local scan.

One gallery (d=128 by default) grows through the sizes; at each size the same encrypted probes
are scanned by: the scan in this process, today's local pool of 2 processes (``LocalScan``), and
a real Dask scheduler with 1, then 2 worker processes (``DaskScan``, started here on 127.0.0.1).
Reported per configuration: the first scan (workers load their partitions from the store), the
median scan after it, comparisons/s, the overhead against the in-process scan, bytes moved per
query, the workers' resident memory, and whether every query's decrypted top-1 and decision equal
plaintext numpy.  Per-block costs (scan, load, bytes) feed the capacity model in docs/scale.md.
The reference design (one TenSEAL ``ckks_vector`` per identity) runs on 1,000 identities in the
same run.

    python bench/bench_scale.py [--sizes 100000,1000000] [--dim 128] [--queries 5]
                                [--store sqlite|postgresql]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
from bench_gallery import grown, plaintext_top1, reference_query_seconds, unit_rows
from report import machine, peak_rss_gb, table, write_section

from cipherface.gallery.dask_scan import DaskScan
from cipherface.gallery.packing import encrypt_probe
from cipherface.gallery.scan import LocalScan
from cipherface.identification import Identifier
from cipherface.testing.cluster import cluster


def measure(ident, scanner, probes, vectors, n, cutoff) -> dict:
    """First scan, median scan (as the query timed it), the key owner's share, the bytes of the
    score blocks, and agreement with plaintext, on ``scanner`` (None: in process)."""
    gallery = ident.gallery
    gallery.use_scanner(scanner)
    start = time.perf_counter()
    _, results = gallery.scan(probes[0][1][0])
    first = time.perf_counter() - start
    scans, owner, agree = [], [], 0
    for target, (probe, row, offset) in probes:
        found = ident.identify_encrypted(probe, row, offset, top_k=1, threshold=0.07)
        scans.append(found.timings_ms["encrypted_scan"] / 1000)
        owner.append(found.timings_ms["decrypt_rank"] / 1000)
        best, accept = plaintext_top1(vectors[:n], target, cutoff)
        agree += (found.candidates[0].name, found.candidates[0].accepted) == (f"id{best}", accept)
    gallery.use_scanner(None)
    return {
        "first": first,
        "scan": statistics.median(scans),
        "owner": statistics.median(owner),
        "result_bytes": sum(len(b) for b in results),
        "agree": agree,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="100000,1000000")
    parser.add_argument("--dim", type=int, default=128)
    parser.add_argument("--queries", type=int, default=5)
    parser.add_argument("--store", choices=["sqlite", "postgresql"], default="sqlite")
    parser.add_argument("--streamed", action="store_true", help="also the local pool with no block resident")
    parser.add_argument("--section", default=None, help="docs/benchmarks.md section (default scale, scale-dD)")
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    rng = np.random.default_rng(2027)
    vectors = unit_rows(rng, max(sizes), args.dim)
    workdir = Path(tempfile.mkdtemp(prefix="cipherface-scale-"))
    server = None
    if args.store == "postgresql":
        import pgserver

        server = pgserver.get_server(workdir / "pg", cleanup_mode="stop")
        location = f"{server.get_uri()}#scale"
    else:
        location = str(workdir / "g.db")
    rows, blocks_rows = [], []
    reference = reference_query_seconds(vectors[:1000], vectors[0])
    try:
        ident = Identifier.open(location, workdir / "keys", create=True, backend="tenseal", dim=args.dim)
        cutoff = ident.protocol.cutoff(0.07)
        for n, enrol_rate in grown(ident, vectors, sizes):
            blocks = ident.gallery.info()["blocks"]
            probes = []
            for q in range(args.queries):
                target = vectors[int(rng.integers(n))] + rng.normal(size=args.dim) * 0.02
                if q % 2:
                    target = unit_rows(rng, 1, args.dim)[0]
                probes.append((target, encrypt_probe(ident.owner.backend, ident.protocol, target)))
            probe_bytes = sum(len(b) for b in probes[0][1][0])
            configs = {}
            ident.gallery.reload()  # the first scan below reads every block, as a fresh process would
            configs["in process"] = measure(ident, None, probes, vectors, n, cutoff)
            result_bytes = configs["in process"]["result_bytes"]
            configs["in process"]["rss"] = peak_rss_gb([os.getpid()])
            ident.gallery.reload()  # frees this process's deserialised blocks before the next runs
            local = LocalScan(2)
            configs["local pool, 2 processes"] = measure(ident, local, probes, vectors, n, cutoff)
            configs["local pool, 2 processes"]["rss"] = peak_rss_gb(local.pids())
            local.close()
            if args.streamed:  # the same pool keeping no block in memory: every scan reads its share
                local = LocalScan(2, resident=0)
                configs["local pool, 2 processes, streamed"] = measure(ident, local, probes, vectors, n, cutoff)
                configs["local pool, 2 processes, streamed"]["rss"] = peak_rss_gb(local.pids())
                local.close()
            for workers in (1, 2):
                with cluster(workers) as c:
                    scanner = DaskScan(c.address)
                    name = f"Dask, {workers} worker{'s' * (workers > 1)}"
                    configs[name] = measure(ident, scanner, probes, vectors, n, cutoff)
                    configs[name]["rss"] = peak_rss_gb([p.pid for p in c.workers])
                    configs[name]["moved"] = workers * probe_bytes + result_bytes
                    scanner.close()
            base = configs["in process"]["scan"]
            for name, m in configs.items():
                rows.append([
                    f"{n:,}", name, f"{m['first']:.1f}", f"{m['scan']:.2f}", f"{n / m['scan']:,.0f}",
                    f"{m['scan'] / base:.2f}x", f"{m.get('moved', probe_bytes + result_bytes) / 1e6:.1f}",
                    f"{m['rss']:.2f}", f"{m['agree']}/{args.queries}",
                ])  # fmt: skip
                print(" | ".join(rows[-1]), flush=True)
            per_block = configs["in process"]["scan"] / blocks
            blocks_rows.append([
                f"{n:,}", blocks, f"{enrol_rate:,.0f}", f"{per_block * 1000:.0f}",
                f"{configs['in process']['first'] / blocks * 1000:.0f}",
                f"{ident.gallery.store.size_bytes() / blocks / 1e6:.1f}", f"{result_bytes / blocks / 1e3:.0f}",
                f"{probe_bytes / 1e6:.1f}", f"{configs['in process']['owner'] / blocks * 1000:.1f}",
            ])  # fmt: skip
        ident.close()
    finally:
        if server is not None:
            server.cleanup()
        shutil.rmtree(workdir, ignore_errors=True)
    md = table(
        ["N", "scan on", "first scan s", "scan s (median)", "cmp/s", "vs in-process", "MB moved/query",
         "scan peak RSS GB", "top-1 + decision = plaintext"],
        rows,
    )  # fmt: skip
    per_block = table(
        ["N", "blocks", "enrol id/s", "scan ms/block", "load+scan ms/block (first)", "stored MB/block",
         "result KB/block", "probe MB", "key owner decrypt+rank ms/block"],
        blocks_rows,
    )  # fmt: skip
    text = (
        f"## The scan on Dask: 1 and 2 workers, d={args.dim} (`bench/bench_scale.py`)\n\n"
        f"Machine: {machine()}. d={args.dim}, backend `tenseal`, preset n8192-s128, cosine, store "
        f"`{args.store}`, {args.queries} encrypted probes per size scanned by each configuration (the same "
        "ciphertexts). Dask: a scheduler and worker processes on 127.0.0.1 (one thread each, no nanny), "
        "started by the bench; every process shares the same 2 cores. First scan = workers read and "
        "deserialise their partitions from the store; median = later scans (partitions resident). "
        "MB moved = probe to every worker + score blocks back. Reference design (one `ckks_vector` per "
        f"identity) in the same run: {1000 / reference:,.0f} comparisons/s.\n\n"
        + md
        + "\n\nPer-block costs (the capacity model in [scale.md](scale.md) is built from these):\n\n"
        + per_block
        + "\n"
    )
    if not args.no_write:
        write_section(args.section or ("scale" if args.dim == 128 else f"scale-d{args.dim}"), text)
    print(text)


if __name__ == "__main__":
    main()
