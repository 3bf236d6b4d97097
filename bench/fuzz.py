"""Malformed blobs at scale: every kind, every backend, outcomes counted (cipherface.testing.fuzz).

    python bench/fuzz.py [--count 10000] [--backends tenseal,pyfhel] [--kinds ...] [--no-write]

Each (backend, kind) batch runs in a child process, split into chunks so a crash or a hang
costs one chunk. Writes a table to docs/security.md; exits 1 if anything but "refused" or
"accepted, same decision" happened.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import Counter
from pathlib import Path

from report import machine, table, write_section
from tqdm import tqdm

from cipherface.testing.fuzz import KINDS, failures, fuzz

SECURITY = Path(__file__).resolve().parents[1] / "docs" / "security.md"
CHUNK = 1000


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--count", type=int, default=10_000, help="blobs per kind per backend")
    ap.add_argument("--backends", default="tenseal,pyfhel")
    ap.add_argument("--kinds", default=",".join(KINDS))
    ap.add_argument("--no-write", action="store_true", help="print only, leave docs/security.md alone")
    args = ap.parse_args()
    rows, bad = [], 0
    for backend in args.backends.split(","):
        for kind in args.kinds.split(","):
            outcomes: Counter[str] = Counter()
            start = time.perf_counter()
            for seed in tqdm(range(0, args.count, CHUNK), desc=f"{backend} {kind}", unit="chunk"):
                outcomes.update(fuzz(backend, kind, min(CHUNK, args.count - seed), seed=seed))
            failed = sum(failures(outcomes).values())
            bad += failed
            rows.append(
                [
                    backend,
                    kind,
                    sum(outcomes.values()),
                    outcomes["refused"],
                    outcomes["accepted, same decision"],
                    failed,
                    f"{time.perf_counter() - start:.0f} s",
                ]
            )
            if failed:
                print(f"{backend} {kind}: {failures(outcomes)}", file=sys.stderr)
    md = table(["backend", "kind", "blobs", "refused", "accepted, same decision", "failures", "time"], rows)
    print(md)
    if not args.no_write:
        note = (
            f"Machine: {machine()}. Failures = accepted with another decision, another exception, "
            "a crash or a hang (each batch runs in a child process)."
        )
        write_section("fuzz", f"{md}\n\n{note}", SECURITY)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
