"""Shared helpers for benchmarks: timing, machine description, and docs/benchmarks.md sections."""

from __future__ import annotations

import os
import platform
import statistics
import time
from collections.abc import Callable
from datetime import date
from pathlib import Path

DOC = Path(__file__).resolve().parents[1] / "docs" / "benchmarks.md"


def median_ms(fn: Callable[[], object], repeat: int) -> float:
    """Median wall-clock milliseconds of ``repeat`` calls (one untimed warm-up first)."""
    fn()
    samples = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - start) * 1000)
    return statistics.median(samples)


def peak_rss_gb(pids: list[int]) -> float:
    """The processes' peak resident memory (VmHWM), summed, in GiB."""
    peak = 0
    for pid in pids:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                peak += int(line.split()[1]) * 1024
    return peak / 2**30


def machine() -> str:
    cpu = platform.processor() or "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{cpu}, {os.cpu_count()} cores, Python {platform.python_version()}, measured {date.today()}"


def table(header: list[str], rows: list[list[object]]) -> str:
    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    out += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(out)


def write_section(name: str, markdown: str, doc: Path = DOC) -> None:
    """Replace the section between <!-- begin NAME --> and <!-- end NAME --> of ``doc`` (appended if absent)."""
    begin, end = f"<!-- begin {name} -->", f"<!-- end {name} -->"
    text = doc.read_text() if doc.exists() else "# Benchmarks\n"
    block = f"{begin}\n{markdown.strip()}\n{end}"
    if begin in text and end in text:
        text = text[: text.index(begin)] + block + text[text.index(end) + len(end) :]
    else:
        text = text.rstrip() + "\n\n" + block + "\n"
    doc.write_text(text)


#: The shared labelled photos beside the checkout.
FACES = Path(__file__).resolve().parents[2] / "shared" / "data" / "faces"


def shared_embeddings() -> tuple[list, dict]:
    """The 520 labelled pairs and the DeepFace Dlib embedding of the largest face of every photo in
    them (each embedded once); stops if a photo shows no face."""
    import sys

    from cipherface.evaluation import embed_images, read_pairs
    from cipherface.plugins import get_embedder

    pairs = read_pairs(FACES / "pairs.csv")
    photos = sorted({p.image_a for p in pairs} | {p.image_b for p in pairs})
    embedded = embed_images(get_embedder("deepface"), FACES, photos)
    embeddings = {n: v for n, v in embedded.items() if not isinstance(v, str)}
    if len(embeddings) != len(photos):
        sys.exit(f"photos without a face: {sorted(set(photos) - set(embeddings))}")
    return pairs, embeddings
