"""The capacity model of docs/scale.md: machines, memory, latency and bytes per query for a matcher
of 10M-100M identities, from per-block costs measured by bench/layouts.py and bench/bench_gallery.py.

Each block holds 4,088 identities (N=8192: 4,096 slots less 8 canaries). A query scans every
block once on some core; the probe (one packed ciphertext) goes to every worker, which expands it
once per query; one score ciphertext per block goes back to the service and on to the key owner,
which decrypts and ranks them.

    python bench/capacity_model.py [--cores-per-node 16] [--ram-gb 128] [--target-s 3]
"""

from __future__ import annotations

import argparse
import math

from report import table

IDS_PER_BLOCK = 4088
#: Per-block costs measured here, by d, for blocks at the last prime scanned by the TenSEAL native
#: kernel (the default since 2026-11-28): scan core-ms (bench/layouts.py), resident and stored MB
#: (bench_gallery.py at 1M: 4,110 and 2,215 B per identity; 66 KB per stored ciphertext), key
#: owner decrypt+rank ms; and per query: the packed probe (MB) and, on each worker, its expansion
#: plus bringing its components to the last prime (s, bench/probe_expansion.py, bench/layouts.py).
MEASURED = {
    128: {"scan_ms": 10.3, "resident_mb": 16.8, "stored_mb": 8.5, "owner_ms": 1.8, "probe_mb": 0.115,
          "expand_s": 0.43},
    512: {"scan_ms": 45.3, "resident_mb": 67.2, "stored_mb": 33.8, "owner_ms": 1.8, "probe_mb": 0.116,
          "expand_s": 1.89},
}  # fmt: skip
RESULT_MB = 0.131  # one score ciphertext per block, one prime
DASK_OVERHEAD = 1.10  # scan on Dask workers / the same cores scanning in process (measured 1.09-1.11x)


def plan(n: int, d: int, cores_per_node: int, ram_gb: float, target_s: float, lan_gbps: float, wan_gbps: float):
    c = MEASURED[d]
    blocks = math.ceil(n / IDS_PER_BLOCK)
    resident_gb = blocks * c["resident_mb"] / 1000
    usable = ram_gb * 0.8  # the rest for the OS, Dask, the worker processes themselves
    nodes_memory = math.ceil(resident_gb / usable)
    scan_core_s = blocks * c["scan_ms"] / 1000 * DASK_OVERHEAD
    # every worker expands the probe once, then scans its blocks
    nodes_latency = math.ceil(scan_core_s / (target_s - c["expand_s"]) / cores_per_node)
    nodes = max(nodes_memory, nodes_latency, 1)
    workers = nodes * cores_per_node
    scan_s = scan_core_s / workers + c["expand_s"]
    probe_gb = workers * c["probe_mb"] / 1000
    results_gb = blocks * RESULT_MB / 1000
    return [
        f"{n / 1e6:,.0f}M",
        d,
        f"{blocks:,}",
        f"{resident_gb:,.0f}",
        f"{blocks * c['stored_mb'] / 1000:,.0f}",
        f"{nodes} ({'memory' if nodes_memory >= nodes_latency else 'latency'})",
        f"{scan_s:.1f}",
        f"{probe_gb * 1000:,.0f} ({probe_gb * 8 / lan_gbps:.2f} s)",
        f"{results_gb * 1000:,.0f} ({results_gb * 8 / wan_gbps:.1f} s)",
        f"{blocks * c['owner_ms'] / 1000:.0f}",
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cores-per-node", type=int, default=16)
    parser.add_argument("--ram-gb", type=float, default=128)
    parser.add_argument("--target-s", type=float, default=3.0, help="scan time aimed at")
    parser.add_argument("--lan-gbps", type=float, default=10.0, help="service <-> workers")
    parser.add_argument("--wan-gbps", type=float, default=1.0, help="service -> key owner")
    args = parser.parse_args()
    rows = [
        plan(n, d, args.cores_per_node, args.ram_gb, args.target_s, args.lan_gbps, args.wan_gbps)
        for d in (128, 512)
        for n in (10_000_000, 100_000_000)
    ]
    header = ["N", "d", "blocks", "resident GB", "stored GB", "nodes (bound by)", "scan s", "probe out MB (LAN s)",
              "scores back MB (WAN s)", "key owner core-s"]  # fmt: skip
    print(table(header, rows))


if __name__ == "__main__":
    main()
