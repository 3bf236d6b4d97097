"""Distance-comparison-preserving encryption: what each approximation factor keeps and gives away,
on the 520 shared pairs and their photos (DeepFace Dlib), in one run.

    python bench/bench_dcpe.py [--no-write]

For every DCPE preset: the key owner's decisions against the float plaintext's (agreement, accuracy,
AUC of the values it decides on) for both metrics, and the honest-but-curious matcher's success
(``cipherface.audit``: it computes the same distances from what it receives). Writes the
``dcpe-factors`` section of docs/schemes.md.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from report import machine, shared_embeddings, table, write_section

from cipherface.audit import auc, run
from cipherface.evaluation import evaluate_metric
from cipherface.params import schemes
from cipherface.roles import KeyOwner, Matcher

DOC = Path(__file__).resolve().parents[1] / "docs" / "schemes.md"
THRESHOLDS = {"cosine": 0.07, "euclidean": 0.6}
HEADER = [
    "preset",
    "approximation factor",
    "cosine AUC",
    "cosine accuracy",
    "cosine agreement",
    "Euclidean AUC",
    "Euclidean accuracy",
    "Euclidean agreement",
    "matcher: linking AUC",
    "matcher: ranking top-1",
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    start = time.time()
    pairs, embeddings = shared_embeddings()
    presets = schemes()["dcpe"][1]
    rows = []
    for name, params in sorted(presets.items(), key=lambda kv: kv[1].approximation_factor):
        owner = KeyOwner.generate("dcpe", name)
        matcher = Matcher(owner.public_bundle())
        cells = [name, f"{params.approximation_factor:g}"]
        for metric, threshold in THRESHOLDS.items():
            r = evaluate_metric(owner, matcher, embeddings, pairs, metric, threshold, progress=False)
            values = r["_values"]
            cells += [
                f"{auc(values['plaintext'], values['labels']):.3f} → {auc(values['encrypted'], values['labels']):.3f}",
                f"{r['plaintext']['accuracy']:.3f} → {r['encrypted']['accuracy']:.3f}",
                f"{100 * r['decision_agreement']:.1f} %",
            ]
        audit = run("dcpe", embeddings, pairs, progress=False, params=name)
        cells += [f"{audit.matcher['linking_auc']:.3f}", f"{audit.matcher['ranking_top1']:.3f}"]
        rows.append(cells)
        print(" | ".join(cells), flush=True)
    text = (
        f"Machine: {machine()}; {time.time() - start:.0f} s for the whole run (`bench/bench_dcpe.py`). "
        f"{len(pairs)} pairs, {len(embeddings)} photos, DeepFace Dlib; thresholds cosine 0.07, Euclidean 0.6 "
        "(the plaintext model's, unchanged). Each cell 'plaintext → DCPE'; agreement: decisions equal to the "
        "float plaintext's. The matcher's columns: what it gets from the vectors it receives, with no key "
        "(linking two queries: AUC; ranking a gallery: top-1).\n\n" + table(HEADER, rows)
    )
    if not args.no_write:
        write_section("dcpe-factors", text, DOC)


if __name__ == "__main__":
    main()
