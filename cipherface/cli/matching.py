"""`cipherface distance`: one encrypted comparison of two embedding files."""

from __future__ import annotations

from pathlib import Path

import click
import numpy as np

from cipherface import embeddings_file
from cipherface.cli.options import emit_json, galleries, json_option, matcher_options, metric_option, threshold_option
from cipherface.embedders.thresholds import DEFAULT_MODEL, default_threshold
from cipherface.errors import DimensionError
from cipherface.roles import PUBLIC_FILE, KeyOwner, Matcher
from cipherface.timing import Stopwatch


def load_embeddings(path: str) -> np.ndarray:
    """An N x d float array from a .npy file or a ``cipherface embed`` .npz (one vector is 1 x d)."""
    return embeddings_file.load(path).embeddings


def load_embedding(path: str) -> np.ndarray:
    arr = load_embeddings(path)
    if len(arr) != 1:
        raise DimensionError(f"{path}: holds {len(arr)} embeddings, one is expected here")
    return arr[0]


def matcher_for(owner: KeyOwner, key: str) -> Matcher:
    """The matcher side, from the public bundle beside the secret one when there is one."""
    folder = Path(key) if Path(key).is_dir() else Path(key).parent
    public = folder / PUBLIC_FILE
    return Matcher(public if public.is_file() else owner.public_bundle())


@click.command()
@click.option("--key", required=True, type=click.Path(exists=True), help="Key folder or secret bundle.")
@metric_option
@threshold_option
@click.option("--model", default=DEFAULT_MODEL, show_default=True, help="Model whose threshold is the default.")
@click.argument("a", type=click.Path(exists=True, dir_okay=False))
@click.argument("b", type=click.Path(exists=True, dir_okay=False))
@matcher_options
@json_option
def distance(key, metric, threshold, model, a, b, matcher, token, ca_file, as_json) -> None:
    """Encrypted distance between two .npy embeddings, decided by the key owner."""
    watch = Stopwatch()
    with watch("load_keys"):
        owner = KeyOwner.load(key)
        if matcher:
            matcher = galleries(matcher, token, ca_file).for_key(owner.public_bundle())
        else:
            matcher = matcher_for(owner, key)
    threshold = default_threshold(model, metric) if threshold is None else threshold
    with watch("encrypt"):
        ea, eb = owner.encrypt(load_embedding(a), metric), owner.encrypt(load_embedding(b), metric, probe=True)
    with watch("encrypted_distance"):
        result = matcher.distance(ea, eb)
    with watch("decrypt_decide"):
        decision = owner.decide(result, threshold, metric)
    out = {**decision.to_dict(), "backend": owner.backend.name, "timings_ms": watch.ms}
    if as_json:
        emit_json(out)
        return
    verdict = "SAME person" if decision.same_person else "DIFFERENT people"
    click.echo(f"{metric} distance {decision.distance:.6f} (threshold {threshold}) -> {verdict}")
    click.echo("timings: " + ", ".join(f"{k} {v:.1f} ms" for k, v in watch.ms.items()))


COMMANDS = [distance]
