"""Accuracy on labelled photo pairs, plaintext and encrypted side by side."""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from cipherface.capabilities import DISTANCE_PRESERVING, PROBE_IN_CLEAR, protocol_for
from cipherface.embedder import Embedder
from cipherface.errors import CipherfaceError, EmbeddingError
from cipherface.plugins import get_protocol
from cipherface.roles import KeyOwner, Matcher


@dataclass(frozen=True)
class Pair:
    image_a: str
    image_b: str
    same_person: bool


def read_pairs(path: str | Path) -> list[Pair]:
    """``image_a,image_b,same_person`` rows (same_person 1/0 or true/false)."""
    path = Path(path)
    if not path.is_file():
        raise CipherfaceError(f"no such pairs file: {path}")
    with path.open(newline="") as fh:
        reader = csv.DictReader(fh)
        missing = {"image_a", "image_b", "same_person"} - set(reader.fieldnames or [])
        if missing:
            raise CipherfaceError(f"{path}: missing column(s) {sorted(missing)}; expected image_a,image_b,same_person")
        return [
            Pair(row["image_a"], row["image_b"], row["same_person"].strip().lower() in {"1", "true", "yes"})
            for row in reader
        ]


def embed_images(embedder: Embedder, folder: Path, names: list[str], progress: bool = True) -> dict[str, Any]:
    """Largest-face embedding per image; images without a usable face map to the error message."""
    out: dict[str, Any] = {}
    for name in tqdm(names, desc="embedding photos", unit="photo", disable=not progress):
        try:
            out[name] = embedder.represent(folder / name)[0].embedding
        except EmbeddingError as exc:
            out[name] = str(exc)
    return out


def rates(values: np.ndarray, labels: np.ndarray, cutoff: float) -> dict[str, float]:
    decided_same = values <= cutoff
    same, diff = labels, ~labels
    return {
        "accuracy": float(np.mean(decided_same == labels)),
        "false_match_rate": float(np.mean(decided_same[diff])) if diff.any() else 0.0,
        "false_non_match_rate": float(np.mean(~decided_same[same])) if same.any() else 0.0,
    }


def evaluate_metric(
    owner: KeyOwner,
    matcher: Matcher,
    embeddings: dict[str, np.ndarray],
    pairs: list[Pair],
    metric: str,
    threshold: float,
    progress: bool = True,
) -> dict[str, Any]:
    """Every pair plaintext and encrypted (each photo encrypted once), with agreement statistics."""
    protocol = protocol_for(owner.backend, metric)
    # what decrypted values must equal; on a distance-preserving backend they approximate the plaintext metric
    oracle = get_protocol(metric) if DISTANCE_PRESERVING in owner.backend.capabilities else protocol
    prepared = {name: oracle.prepare(e) for name, e in embeddings.items()}
    encrypted = {name: owner.encrypt(e, metric) for name, e in embeddings.items()}
    as_probe, probes = prepared, encrypted  # a probe is encrypted as a reference is ...
    if PROBE_IN_CLEAR in owner.backend.capabilities:  # ... unless it goes in the clear
        as_probe = {name: protocol.prepare_probe(e) for name, e in embeddings.items()}
        probes = {name: owner.encrypt(e, metric, probe=True) for name, e in embeddings.items()}
    plain, enc = [], []
    for pair in tqdm(pairs, desc=f"{metric} pairs ({owner.backend.name})", unit="pair", disable=not progress):
        plain.append(oracle.plaintext(prepared[pair.image_a], as_probe[pair.image_b]))
        enc.append(owner.decrypt_result(matcher.distance(encrypted[pair.image_a], probes[pair.image_b]), metric))
    plain_v, enc_v = np.array(plain), np.array(enc)
    labels = np.array([p.same_person for p in pairs])
    cutoff, plain_cut = protocol.cutoff(threshold), oracle.cutoff(threshold)
    agree = (plain_v <= plain_cut) == (enc_v <= cutoff)
    extra: dict[str, Any] = {}
    if protocol.quant_scale:  # exact arithmetic: what quantisation costs against the float plaintext
        real = get_protocol(metric)
        real_v = np.array(
            [real.plaintext(real.prepare(embeddings[p.image_a]), real.prepare(embeddings[p.image_b])) for p in pairs]
        )
        real_cut = real.cutoff(threshold)
        extra = {
            "quantisation": {"scale": protocol.quant_scale, "bits": 8},
            "float_plaintext": rates(real_v, labels, real_cut),
            "float_decision_agreement": float(np.mean((real_v <= real_cut) == (enc_v <= cutoff))),
        }
    return {
        "metric": metric,
        "threshold": threshold,
        "cutoff": cutoff,
        "value": protocol.value_name,
        "pairs": len(pairs),
        "plaintext": rates(plain_v, labels, plain_cut),
        "encrypted": rates(enc_v, labels, cutoff),
        "decision_agreement": float(np.mean(agree)),
        "disagreeing_pairs": [f"{p.image_a},{p.image_b}" for p, ok in zip(pairs, agree) if not ok],
        "max_abs_error": float(np.max(np.abs(np.array([protocol.plain_value(v) for v in enc_v]) - plain_v))),
        **extra,
        "_values": {"plaintext": plain_v, "encrypted": enc_v, "labels": labels},
    }


def evaluate(
    owner: KeyOwner,
    embedder: Embedder,
    pairs_csv: str | Path,
    images: str | Path,
    metrics: list[str],
    thresholds: dict[str, float] | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Embed every photo once, then evaluate each metric through a matcher holding only the public bundle."""
    pairs = read_pairs(pairs_csv)
    folder = Path(images)
    names = sorted({p.image_a for p in pairs} | {p.image_b for p in pairs})
    embedded = embed_images(embedder, folder, names, progress)
    failed = {n: v for n, v in embedded.items() if isinstance(v, str)}
    embeddings = {n: v for n, v in embedded.items() if not isinstance(v, str)}
    usable = [p for p in pairs if p.image_a in embeddings and p.image_b in embeddings]
    matcher = Matcher(owner.public_bundle())
    results = {
        m: evaluate_metric(
            owner, matcher, embeddings, usable, m, (thresholds or {}).get(m, embedder.threshold(m)), progress
        )
        for m in metrics
    }
    return {
        "backend": owner.backend.name,
        "params": owner.backend.params.to_dict(),
        "embedder": {"name": embedder.name, "model": getattr(embedder, "model", None), "dim": embedder.dim},
        "pairs_total": len(pairs),
        "pairs_evaluated": len(usable),
        "images_without_face": failed,
        "metrics": results,
    }


def write_report(summary: dict[str, Any], out: str | Path) -> tuple[Path, Path]:
    """summary.json and roc.png (FMR/FNMR against threshold and ROC, from decrypted distances)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    folder = Path(out)
    folder.mkdir(parents=True, exist_ok=True)
    metrics = summary["metrics"]
    fig, axes = plt.subplots(len(metrics), 2, figsize=(11, 4.2 * len(metrics)), squeeze=False)
    for row, (name, res) in zip(axes, metrics.items()):
        values, labels = res["_values"]["encrypted"], res["_values"]["labels"]
        grid = np.linspace(values.min(), values.max(), 400)
        fmr = [np.mean(values[~labels] <= c) for c in grid]
        fnmr = [np.mean(values[labels] > c) for c in grid]
        row[0].plot(grid, fmr, label="false match rate")
        row[0].plot(grid, fnmr, label="false non-match rate")
        row[0].axvline(res["cutoff"], color="k", ls="--", label=f"cutoff {res['cutoff']:.4g}")
        row[0].set(title=f"{name}: error rates vs decrypted {res['value']}", xlabel=res["value"], ylabel="rate")
        row[0].legend()
        row[1].plot(fmr, 1 - np.array(fnmr))
        row[1].set(
            title=f"{name}: ROC ({summary['backend']}, encrypted)",
            xlabel="false match rate",
            ylabel="true match rate",
            xlim=(0, 1),
            ylim=(0, 1.01),
        )
    fig.tight_layout()
    png = folder / "roc.png"
    fig.savefig(png, dpi=90)
    plt.close(fig)
    clean = {**summary, "metrics": {k: {kk: vv for kk, vv in v.items() if kk != "_values"} for k, v in metrics.items()}}
    js = folder / "summary.json"
    js.write_text(json.dumps(clean, indent=2, sort_keys=True))
    return js, png
