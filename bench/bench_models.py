"""Both face models on every backend: the 520 shared pairs, plaintext vs encrypted, in one run.

For Dlib (DeepFace, 128-d) and facenet512-casia (512-d), each photo is embedded once; then every
installed backend's default 128-bit preset computes both metrics for every pair through a matcher
holding only the public bundle. One ROC plot holds both models (decrypted cosine distances on the
first backend).

    python bench/bench_models.py [--backends tenseal,pyfhel,...] [--no-write]

Writes the ``models`` section of docs/accuracy.md and docs/roc-models.png.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
from report import machine, table, write_section

from cipherface import KeyOwner, Matcher
from cipherface.evaluation import embed_images, evaluate_metric, read_pairs
from cipherface.plugins import embedder_for

FACES = Path(__file__).resolve().parents[2] / "shared" / "data" / "faces"
DOCS = Path(__file__).resolve().parents[1] / "docs"
MODELS = ("Dlib", "facenet512-casia")
BACKENDS = ("tenseal", "pyfhel", "seal", "tenseal-bfv", "pyfhel-bfv")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backends", default=",".join(BACKENDS))
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    start = time.time()
    pairs = read_pairs(FACES / "pairs.csv")
    names = sorted({p.image_a for p in pairs} | {p.image_b for p in pairs})
    rows, curves = [], {}
    for model in MODELS:
        embedder = embedder_for(model)
        embedded = embed_images(embedder, FACES, names, progress=True)
        embeddings = {n: v for n, v in embedded.items() if not isinstance(v, str)}
        usable = [p for p in pairs if p.image_a in embeddings and p.image_b in embeddings]
        for backend in args.backends.split(","):
            owner = KeyOwner.generate(backend)
            matcher = Matcher(owner.public_bundle())
            for metric in ("cosine", "euclidean"):
                r = evaluate_metric(owner, matcher, embeddings, usable, metric, embedder.threshold(metric), False)
                rows.append(
                    [model, str(embedder.dim), backend, metric, f"{r['threshold']:.4g}",
                     f"{r.get('float_plaintext', r['plaintext'])['accuracy']:.2%}",
                     f"{r['encrypted']['accuracy']:.2%}", f"{r['decision_agreement']:.2%}",
                     f"{r.get('float_decision_agreement', r['decision_agreement']):.2%}", f"{r['max_abs_error']:.1e}"]
                )  # fmt: skip
                print(" | ".join(rows[-1]), flush=True)
                if metric == "cosine" and model not in curves:
                    curves[model] = (r["_values"]["encrypted"], r["_values"]["labels"])
    md = table(
        ["model", "d", "backend", "metric", "threshold", "plaintext accuracy (float)", "encrypted accuracy",
         "agreement with the scheme's plaintext", "agreement with float plaintext", "max abs error"],
        rows,
    )  # fmt: skip
    text = (
        "## Both models on every backend (`bench/bench_models.py`)\n\n"
        f"Machine: {machine()}; {time.time() - start:.0f} s. The 520 shared pairs, OpenCV detector, each model's "
        "default thresholds (facenet512-casia's calibrated on the even half, above); every backend's default "
        "128-bit preset (BFV rows: 8-bit quantised embeddings, docs/schemes.md). For comparison, the reference "
        "design reports on LFW with DeepFace's Facenet512 94.9 % plaintext and 95.0 % encrypted accuracy "
        "(other weights and other pairs: not the same experiment).\n\n" + md + "\n\n![ROC per model](roc-models.png)"
    )
    if not args.no_write:
        _plot(curves, DOCS / "roc-models.png")
        write_section("models", text, DOCS / "accuracy.md")
    print(text)


def _plot(curves, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.5, 5))
    for model, (values, labels) in curves.items():
        grid = np.linspace(values.min(), values.max(), 400)
        fmr = [np.mean(values[~labels] <= c) for c in grid]
        tmr = [np.mean(values[labels] <= c) for c in grid]
        ax.plot(fmr, tmr, label=model)
    ax.set(xlabel="false match rate", ylabel="true match rate", title="ROC, decrypted cosine distances (520 pairs)")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)


if __name__ == "__main__":
    main()
