"""``cipherface audit``: what the matcher learns, measured, for every installed scheme."""

from __future__ import annotations

from pathlib import Path

import click

from cipherface.audit import run as run_audit
from cipherface.capabilities import enforce_disclosures
from cipherface.cli.options import emit_json, json_option
from cipherface.errors import CipherfaceError
from cipherface.evaluation import embed_images, read_pairs
from cipherface.plugins import embedder_for, registry


@click.command()
@click.option("--pairs", "pairs_csv", required=True, type=click.Path(exists=True, dir_okay=False))
@click.option("--images", required=True, type=click.Path(exists=True, file_okay=False), help="Folder of the photos.")
@click.option("--backends", default=None, help="Comma-separated backends (default: every installed one).")
@click.option("--limit", type=click.IntRange(min=2), default=None, help="Use only the first N pairs (a quick look).")
@json_option
def audit(pairs_csv, images, backends, limit, as_json) -> None:
    """Attack each scheme as an honest-but-curious matcher would, with exactly what it receives: tell
    same-person pairs apart, link two queries of one person, rank a gallery for a probe. Prints the
    matcher's success beside the key owner's (AUC 0.5 = chance). Measuring sends nothing anywhere:
    both parties run in this process, so schemes that disclose the probe are measured too."""
    enforce_disclosures(None)  # a measurement, not a deployment: nothing leaves this process
    names = backends.split(",") if backends else sorted(registry().backends)
    unknown = sorted(set(names) - set(registry().backends))
    if unknown:
        raise CipherfaceError(f"unknown backend(s) {unknown}; installed: {sorted(registry().backends)}")
    pairs = read_pairs(pairs_csv)[:limit]
    photos = sorted({p.image_a for p in pairs} | {p.image_b for p in pairs})
    embedded = embed_images(embedder_for(), Path(images), photos, progress=not as_json)
    embeddings = {n: v for n, v in embedded.items() if not isinstance(v, str)}
    pairs = [p for p in pairs if p.image_a in embeddings and p.image_b in embeddings]
    rows = [run_audit(n, embeddings, pairs, progress=not as_json).to_dict() for n in names]
    if as_json:
        emit_json({"pairs": len(pairs), "photos": len(embeddings), "backends": rows})
        return
    click.echo(f"{len(pairs)} pairs, {len(embeddings)} photos; matcher vs key owner (AUC, 0.5 = chance)")
    for r in rows:
        m, k, c = r["matcher"], r["key_owner"], r["cost"]
        click.echo(
            f"  {r['backend']:<12} pairs {m['pairs_auc']:.3f} vs {k['pairs_auc']:.3f}  linking "
            f"{m['linking_auc']:.3f} vs {k['linking_auc']:.3f}  ranking top-1 {m['ranking_top1']:.3f} vs "
            f"{k['ranking_top1']:.3f} (chance {c['chance_ranking_top1']:.3f})  1:1 {c['one_to_one_ms']:.0f} ms"
        )
        for d in r["disclosures"]:
            click.echo(f"  {'':<12} discloses: {d}")


COMMANDS = [audit]
