"""Load and failure test of the matcher service, on 127.0.0.1 only, bounded in time and count.

For each gallery size (10k and 100k identities by default, d=128, TenSEAL, cosine):

1. start ``cipherface serve`` as a process and enrol N random unit identities through the client,
   counting the bytes on the wire per enrolled identity;
2. for ``--seconds``, 8 identifying client processes and 1 enrolling client process hit it at
   once: queries/s, latency p50/p95/p99, errors, top-1 and decision against plaintext numpy,
   identities enrolled meanwhile, the server's peak resident memory;
3. ``kill -9`` the server while a client enrols, restart it, and check that every identity the key
   owner's directory holds is in the gallery and that sampled queries still equal plaintext.

Bytes per query (probe upload, score download) are measured at every size given to
``--wire-sizes`` (1k, 100k and 1M by default: the 1M gallery is enrolled through the service too,
about 5 GB on the loopback). Results go to docs/benchmarks.md (section ``service``).

    python bench/bench_service.py [--sizes 10000,100000] [--seconds 60] [--clients 8]
                                  [--wire-sizes 1000,100000,1000000]
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np
from report import machine, table, write_section

from cipherface.identification import Identifier
from cipherface.service import RemoteMatcher
from cipherface.service.process import serve_command, stop, wait_until_up
from cipherface.service.tokens import TokenStore

DIM = 128
THRESHOLD = 0.07
BATCH = 100


def unit_rows(seed: int, n: int) -> np.ndarray:
    x = np.random.default_rng(seed).normal(size=(n, DIM))
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def start(data: Path) -> tuple[subprocess.Popen, str]:
    command, url = serve_command(data, "--scan-workers", "1")
    proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    wait_until_up(proc, url)
    return proc, url


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def enrol(url: str, token: str, keys: Path, vectors: np.ndarray, offset: int = 0, create: bool = False) -> dict:
    """Enrol ``vectors`` as p{offset+i} in batches; the bytes sent and received."""
    with RemoteMatcher(url, token) as remote:
        with Identifier.open("g", keys, create=create, backend="tenseal", dim=DIM, matcher=remote) as ident:
            for start in range(0, len(vectors), 4088):
                chunk = vectors[start : start + 4088]
                ident.enroll([f"p{offset + start + i}" for i in range(len(chunk))], list(chunk), progress=False)
        return {"sent": remote.sent, "received": remote.received}


def identifying_client(url, token, keys, seed, deadline, enrolled, out) -> None:
    """Queries until the deadline: latency, errors, and agreement with plaintext."""
    gallery = unit_rows(0, enrolled)
    rng = np.random.default_rng(seed)
    latencies, errors, wrong = [], 0, 0
    with RemoteMatcher(url, token) as remote, Identifier.open("g", keys, matcher=remote) as ident:
        while time.time() < deadline:
            i = int(rng.integers(enrolled))
            probe = gallery[i] + rng.normal(scale=0.02, size=DIM)
            start = time.perf_counter()
            try:
                result = ident.identify(probe, top_k=1, threshold=THRESHOLD)
            except Exception:  # counted, the load goes on
                errors += 1
                continue
            latencies.append(time.perf_counter() - start)
            values = 1 - gallery @ (probe / np.linalg.norm(probe))
            best = int(np.argmin(values))
            if result.candidates[0].name != f"p{best}" or (result.identity is not None) != (values[best] <= THRESHOLD):
                wrong += 1
    out.put({"latencies": latencies, "errors": errors, "wrong": wrong})


def enrolling_client(url, token, keys, first, deadline, out, stop_on_error=False) -> None:
    """Enrols batches of new identities until the deadline (or the first error)."""
    n, errors = 0, 0
    with RemoteMatcher(url, token) as remote, Identifier.open("g", keys, matcher=remote) as ident:
        while time.time() < deadline:
            batch = unit_rows(first + n, BATCH)
            try:
                ident.enroll([f"new{first + n + i}" for i in range(BATCH)], list(batch), progress=False)
                n += BATCH
            except Exception:
                errors += 1
                if stop_on_error:
                    break
    out.put({"enrolled": n, "errors": errors})


def load(url: str, token: str, keys: Path, size: int, seconds: float, clients: int) -> dict:
    ctx = mp.get_context("spawn")
    out = ctx.Queue()
    deadline = time.time() + seconds + 15  # clients open their keys first
    procs = [
        ctx.Process(target=identifying_client, args=(url, token, keys, 100 + c, deadline, size, out))
        for c in range(clients)
    ]
    procs.append(ctx.Process(target=enrolling_client, args=(url, token, keys, 10_000_000, deadline, out)))
    for p in procs:
        p.start()
    results = [out.get(timeout=seconds + 900) for _ in procs]
    for p in procs:
        p.join(60)
    lat = sorted(x for r in results for x in r.get("latencies", []))
    q = np.percentile(lat, [50, 95, 99]) if lat else [float("nan")] * 3
    return {
        "queries": len(lat),
        "qps": len(lat) / (seconds + 15),
        "p50": q[0],
        "p95": q[1],
        "p99": q[2],
        "errors": sum(r["errors"] for r in results),
        "wrong": sum(r.get("wrong", 0) for r in results),
        "enrolled": sum(r.get("enrolled", 0) for r in results),
    }


def kill_during_enrolment(data: Path, token: str, keys: Path, size: int) -> dict:
    """kill -9 while a client enrols; restart; every identity the directory holds must be there."""
    proc, url = start(data)
    ctx = mp.get_context("spawn")
    out = ctx.Queue()
    client = ctx.Process(target=enrolling_client, args=(url, token, keys, 20_000_000, time.time() + 600, out, True))
    client.start()
    time.sleep(8)  # batches committed, one in flight
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    acknowledged = out.get(timeout=600)["enrolled"]
    client.join(60)
    proc, url = start(data)
    try:
        with RemoteMatcher(url, token) as remote, Identifier.open("g", keys, matcher=remote) as ident:
            names = ident.names()
            present = ident.gallery.count()
            late = sorted(n for n in names if n.startswith("new2"))
            # every acknowledged identity is there; the batch in flight landed whole or not at all
            ok = present == len(names) and len(late) in (acknowledged, acknowledged + BATCH)
            rng = np.random.default_rng(1)
            gallery = unit_rows(0, size)
            for i in rng.integers(size, size=5):
                ok &= ident.identify(gallery[i], top_k=1, threshold=THRESHOLD).identity == f"p{i}"
    finally:
        stop(proc)
    return {"acknowledged": acknowledged, "present": len(late), "gallery": present, "ok": bool(ok)}


def wire(url: str, token: str, keys: Path) -> dict:
    with RemoteMatcher(url, token) as remote, Identifier.open("g", keys, matcher=remote) as ident:
        ident.identify(unit_rows(7, 1)[0], top_k=1, threshold=THRESHOLD)  # state and bundle fetched once
        sent, received = remote.sent, remote.received
        ident.identify(unit_rows(8, 1)[0], top_k=1, threshold=THRESHOLD)
        return {"up": remote.sent - sent, "down": remote.received - received, "blocks": ident.gallery.info()["blocks"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="10000,100000")
    parser.add_argument("--wire-sizes", default="1000,100000,1000000")
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",") if s]
    wire_sizes = [int(s) for s in args.wire_sizes.split(",") if s]
    load_rows, kill_rows, wire_rows = [], [], []
    for size in sorted(set(sizes) | set(wire_sizes)):
        tmp = Path(tempfile.mkdtemp(prefix=f"cf-service-{size}-"))
        try:
            data, keys = tmp / "matcher", tmp / "keys"
            store = TokenStore(data)
            token = store.create("bench")
            store.close()
            proc, url = start(data)
            try:
                t0 = time.perf_counter()
                traffic = enrol(url, token, keys, unit_rows(0, size), create=True)
                seconds = time.perf_counter() - t0
                print(f"{size}: enrolled through the service in {seconds:.1f} s ({size / seconds:.0f}/s)", flush=True)
                w = wire(url, token, keys)
                wire_rows.append(
                    [f"{size:,}", f"{traffic['sent'] / size / 1e3:.2f} KB", f"{size / seconds:,.0f}/s",
                     f"{w['up'] / 1e6:.1f} MB", f"{w['down'] / 1e6:.2f} MB", w["blocks"]]
                )  # fmt: skip
                print(wire_rows[-1], flush=True)
                if size in sizes:
                    r = load(url, token, keys, size, args.seconds, args.clients)
                    rss = peak_rss_mb(proc.pid)
                    load_rows.append(
                        [f"{size:,}", f"{args.clients} + 1", r["queries"], f"{r['qps']:.2f}", f"{r['p50']:.2f} s",
                         f"{r['p95']:.2f} s", f"{r['p99']:.2f} s", r["errors"], r["wrong"], r["enrolled"],
                         f"{rss:,.0f} MB"]
                    )  # fmt: skip
                    print(load_rows[-1], flush=True)
            finally:
                stop(proc)
            if size in sizes:
                k = kill_during_enrolment(data, token, keys, size)
                kill_rows.append(
                    [f"{size:,}", k["acknowledged"], k["present"], k["gallery"], "yes" if k["ok"] else "NO"]
                )
                print(kill_rows[-1], flush=True)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    text = f"""
## The matcher as a service (`bench/bench_service.py`)

{machine()}. `cipherface serve` (uvicorn, one scan process) and every client on 127.0.0.1; TenSEAL
N=8192, d=128, cosine; each client is a process of its own (encrypting its probe, checking canaries and
seals, ranking), all on the same 2 cores as the server.

Load: {args.clients} identifying clients and 1 enrolling client (batches of {BATCH}) for {args.seconds:.0f} s
(+15 s while clients open their keys). Latency is end to end for one query (probe encryption, upload,
scan, download, checks, ranking). "wrong" counts queries whose top-1 or decision differs from plaintext.

{table(["gallery", "clients", "queries", "queries/s", "p50", "p95", "p99", "errors", "wrong",
        "enrolled meanwhile", "server peak RSS"], load_rows)}

`kill -9` of the server while a client enrols batches; then restarted:

{table(["gallery", "identities acknowledged to that client before the kill", "of its identities present after",
        "identities in the gallery", "all acknowledged present, none torn, queries = plaintext"], kill_rows)}

Bytes on the wire (request and answer bodies, framing included):

{table(["gallery", "enrolment upload per identity", "enrolment rate via the service", "per query: up",
        "per query: down", "score blocks"], wire_rows)}
"""  # fmt: skip
    print(text)
    if not args.no_write:
        write_section("service", text)


if __name__ == "__main__":
    main()
