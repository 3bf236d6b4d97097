"""Thresholds per model and metric: chosen on one half of the shared pairs, reported on the other.

The even-numbered rows of ../shared/data/faces/pairs.csv (0, 2, 4, ...) calibrate: the threshold
with the best accuracy there (midway between neighbouring distances). The odd-numbered rows are
held out: accuracy, false match and false non-match rates at that threshold. Plaintext only (the
encrypted decisions equal plaintext's, tests/test_facenet.py and docs/accuracy.md).

    python bench/calibrate_thresholds.py [--model facenet512-casia] [--detector opencv] [--no-write]

Writes the ``thresholds`` section of docs/accuracy.md.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from report import machine, table, write_section

from cipherface.evaluation import embed_images, rates, read_pairs
from cipherface.plugins import embedder_for, get_protocol

FACES = Path(__file__).resolve().parents[2] / "shared" / "data" / "faces"
DOC = Path(__file__).resolve().parents[1] / "docs" / "accuracy.md"


def best_threshold(distances: np.ndarray, labels: np.ndarray) -> float:
    """The distance cut with the best accuracy (midpoints between sorted distances)."""
    d = np.sort(np.unique(distances))
    cuts = np.concatenate([[d[0] - 1e-6], (d[1:] + d[:-1]) / 2, [d[-1] + 1e-6]])
    accuracy = [np.mean((distances <= c) == labels) for c in cuts]
    return float(cuts[int(np.argmax(accuracy))])


def calibrate(model: str | None, detector: str | None) -> tuple[dict, list[list[str]]]:
    embedder = embedder_for(model, detector)
    info = embedder.describe()
    pairs = read_pairs(FACES / "pairs.csv")
    names = sorted({p.image_a for p in pairs} | {p.image_b for p in pairs})
    emb = embed_images(embedder, FACES, names, progress=True)
    usable = [
        (i, p)
        for i, p in enumerate(pairs)
        if not isinstance(emb[p.image_a], str) and not isinstance(emb[p.image_b], str)
    ]
    labels = np.array([p.same_person for _, p in usable])
    even = np.array([i % 2 == 0 for i, _ in usable])
    found, rows = {}, []
    for metric in ("cosine", "euclidean"):
        p = get_protocol(metric)
        dist = np.array(
            [p.distance(p.plaintext(p.prepare(emb[x.image_a]), p.prepare(emb[x.image_b]))) for _, x in usable]
        )
        t = round(best_threshold(dist[even], labels[even]), 4)
        held = rates(dist[~even], labels[~even], t)
        found[metric] = t
        rows.append(
            [info["model"], info["detector"], str(info["dim"]), metric, f"{t:.4f}",
             f"{np.mean((dist[even] <= t) == labels[even]):.4f}", f"{held['accuracy']:.4f}",
             f"{held['false_match_rate']:.4f}", f"{held['false_non_match_rate']:.4f}",
             f"{info['thresholds'].get(metric, float('nan')):.4f}"]
        )  # fmt: skip
        print(" | ".join(rows[-1]), flush=True)
    missing = sorted(n for n, v in emb.items() if isinstance(v, str))
    print(f"{len(usable)}/{len(pairs)} pairs usable; photos without a face: {missing}")
    return found, rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", action="append", help="repeatable (default: Dlib and facenet512-casia)")
    parser.add_argument("--detector", default=None)
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    rows = []
    for model in args.model or ["Dlib", "facenet512-casia"]:
        rows += calibrate(model, args.detector)[1]
    md = table(
        ["model", "detector", "d", "metric", "threshold (even half)", "accuracy, even half",
         "accuracy, odd half (held out)", "FMR, odd half", "FNMR, odd half", "threshold in use"],
        rows,
    )  # fmt: skip
    text = (
        "## Thresholds: calibrated on one half, reported on the other (`bench/calibrate_thresholds.py`)\n\n"
        f"Machine: {machine()}. Plaintext distances on the shared pairs: the threshold with the best accuracy on "
        "the even-numbered rows of pairs.csv, and how it does on the odd-numbered rows it never saw. "
        "Dlib's threshold in use is DeepFace's published one; facenet512-casia's is the calibrated one.\n\n" + md
    )
    if not args.no_write:
        write_section("thresholds", text, DOC)
    print(text)


if __name__ == "__main__":
    main()
