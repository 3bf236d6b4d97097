"""1:N commands: `enroll`, `identify` and `gallery info|list|remove`."""

from __future__ import annotations

from pathlib import Path

import click
import numpy as np

from cipherface import embeddings_file
from cipherface.cli.matching import load_embeddings
from cipherface.cli.options import (
    IMAGE_SUFFIXES,
    backend_option,
    detector_option,
    emit_json,
    finish,
    galleries,
    given,
    json_option,
    matcher_options,
    metric_option,
    model_option,
    photo_files,
    refuse_ignored,
    threshold_option,
)
from cipherface.errors import CipherfaceError, IntegrityError
from cipherface.gallery import layout as layouts
from cipherface.identification import Identifier, default_key_dir

#: ``gallery migrate --layout`` names.
LAYOUT_CHOICES = {"last-prime": layouts.LAST_PRIME, "two-primes": layouts.TWO_PRIMES}

gallery_option = click.option(
    "--gallery",
    required=True,
    type=click.Path(dir_okay=False),
    help="Gallery file (SQLite), the matcher's side; with --matcher, the gallery's name on the service.",
)
key_option = click.option(
    "--key",
    "--keys",
    "key",
    type=click.Path(file_okay=False),
    default=None,
    help="Key owner's folder (secret bundle, MAC key, names and block versions); default: a folder of its "
    "own under $CIPHERFACE_KEYS (~/.local/share/cipherface/keys), never beside the matcher's gallery.",
)


def key_dir(where, gallery: str, key: str | None) -> Path:
    return Path(key) if key else default_key_dir(where.label(gallery))


def stored_meta(where, gallery: str) -> dict | None:
    """An existing gallery's settings as stored (checked when it is opened with the key), or None."""
    if not where.exists(gallery):
        return None
    existing = where.open(gallery)
    try:
        return existing.meta()
    finally:
        existing.close()


def made_by(where, gallery: str, model: str | None, detector: str | None, embedding_file: str | None):
    """The embedder for this command (the gallery's own model and detector unless given) and what it
    records; for embeddings from a file, what the file records (an .npz of ``cipherface embed``),
    or the model named with --model, or nothing (a bare .npy)."""
    from cipherface import embeddings_file
    from cipherface.plugins import embedder_for

    recorded = (stored_meta(where, gallery) or {}).get("embedder") or {}
    if embedding_file:
        info = embeddings_file.load(embedding_file).info
        if info is not None:
            if model is not None and model != info.get("model"):
                raise click.UsageError(f"--model {model} conflicts with {embedding_file}, made by {info.get('model')}")
            return None, info
        if model is None:
            return None, None
    embedder = embedder_for(model or recorded.get("model"), detector or recorded.get("detector"))
    return embedder, embedder.describe()


def folder_photos(folder: Path) -> list[tuple[str, Path]]:
    """(name, photo) for every FOLDER/NAME/photo."""
    pairs = [
        (person.name, photo)
        for person in sorted(p for p in folder.iterdir() if p.is_dir())
        for photo in sorted(person.iterdir())
        if photo.suffix.lower() in IMAGE_SUFFIXES
    ]
    if not pairs:
        raise CipherfaceError(f"{folder} holds no NAME/photo files (expected one sub-folder per person)")
    return pairs


@click.command()
@gallery_option
@key_option
@backend_option
@metric_option
@click.option("--name", default=None, help="Name of the person in IMAGES (or in --npy).")
@click.option(
    "--folder",
    type=click.Path(exists=True, file_okay=False),
    default=None,
    help="Enrol FOLDER/NAME/*.jpg, one sub-folder per person.",
)
@click.option(
    "--npy",
    type=click.Path(exists=True, dir_okay=False),
    default=None,
    help="Embeddings instead of photos: a `cipherface embed` .npz (it records its model) or a .npy; "
    "one vector, or N of them with --names.",
)
@click.option(
    "--names",
    "names_file",
    type=click.Path(exists=True, dir_okay=False),
    default=None,
    help="With --npy: a text file with one name per row of the array.",
)
@model_option
@detector_option
@matcher_options
@click.option(
    "--layout",
    type=click.Choice(["last-prime", "two-primes"]),
    default=None,
    help="How a new gallery stores its blocks: at the last prime (the default where the backend can: half "
    "the bytes and scan work, results within ±16) or at two primes (results within ±2^18).",
)
@click.argument("images", nargs=-1, type=click.Path(exists=True, dir_okay=False))
@json_option
def enroll(
    gallery, key, backend, metric, name, folder, npy, names_file, model, detector, matcher, token, ca_file, layout,
    images, as_json,
) -> None:  # fmt: skip
    """Enrol people into an encrypted gallery (created with fresh keys if it does not exist)."""
    where = galleries(matcher, token, ca_file)
    stored = stored_meta(where, gallery)
    if stored is not None:  # made already: its backend and metric are fixed, a different flag is an error
        if given("backend"):
            refuse_ignored("--backend", backend, stored["backend"], f"gallery {gallery}")
        if given("metric"):
            refuse_ignored("--metric", metric, stored["metric"], f"gallery {gallery}")
        if layout is not None:
            raise click.UsageError(f"--layout applies to a new gallery; gallery {gallery} exists: use gallery migrate")
    embedder, made = made_by(where, gallery, model, detector, npy)
    names, embeddings, skipped = _enrolment_input(name, folder, npy, names_file, images, embedder)
    dim = int(np.asarray(embeddings[0]).size)
    keys = key_dir(where, gallery, key)
    with Identifier.open(
        gallery,
        keys,
        create=True,
        backend=backend,
        metric=metric,
        dim=dim,
        embedder=made,
        matcher=where,
        layout=None if layout is None else LAYOUT_CHOICES[layout],
    ) as ident:
        ident.enroll(names, embeddings, progress=not as_json, made_by=made)
        info = ident.gallery.info()
    report = {"enrolled": len(names), "skipped": skipped, "gallery": info, "key_folder": str(keys)}
    summary = (
        f"enrolled {len(names)} template(s) of {len(set(names))} name(s); gallery {where.label(gallery)} now holds "
        f"{info['identities']} in {info['blocks']} block(s); the key owner's folder is {keys}"
    )
    finish(report, as_json, summary, skipped)


def _enrolment_input(name, folder, npy, names_file, images, embedder):
    skipped: dict[str, str] = {}
    if npy:
        arr = load_embeddings(npy)
        if names_file:
            names = [ln.strip() for ln in Path(names_file).read_text().splitlines() if ln.strip()]
        elif name:
            names = [name] * len(arr)
        else:
            raise click.UsageError("--npy needs --name or --names")
        if len(names) != len(arr):
            raise click.UsageError(f"{len(names)} names for {len(arr)} embeddings")
        return names, list(arr), skipped
    if folder:
        photos = folder_photos(Path(folder))
    elif images and name:
        photos = [(name, Path(p)) for p in images]
    else:
        raise click.UsageError("give --name NAME IMAGES..., or --folder DIR, or --npy FILE")
    from tqdm import tqdm

    names, embeddings = [], []
    for person, photo in tqdm(photos, desc="embedding photos", unit="photo", disable=len(photos) < 2):
        try:
            face = embedder.represent(photo)[0]
        except CipherfaceError as exc:
            skipped[str(photo)] = str(exc)
            continue
        names.append(person)
        embeddings.append(face.embedding)
    if not names:
        raise CipherfaceError(f"no usable face in any photo: {skipped}")
    return names, embeddings, skipped


@click.command()
@gallery_option
@key_option
@click.argument("images", nargs=-1, type=click.Path(exists=True))
@click.option(
    "--npy",
    type=click.Path(exists=True, dir_okay=False),
    default=None,
    help="A probe embedding instead: a `cipherface embed` .npz (checked against the gallery's model) or a .npy.",
)
@click.option("--top-k", type=click.IntRange(min=1), default=5, show_default=True)
@threshold_option
@click.option(
    "--workers", type=click.IntRange(1, 64), default=1, show_default=True, help="Processes scanning the gallery."
)
@model_option
@detector_option
@click.option("--jsonl", type=click.Path(dir_okay=False), default=None, help="Write one JSON line per probe here.")
@click.option("--csv", "csv_path", type=click.Path(dir_okay=False), default=None, help="... and one CSV row here.")
@matcher_options
@json_option
def identify(
    gallery, key, images, npy, top_k, threshold, workers, model, detector, jsonl, csv_path, matcher, token, ca_file,
    as_json,
) -> None:  # fmt: skip
    """Who is this? The largest face of each probe against the encrypted gallery (embedded with the
    gallery's own model and detector unless given; a probe from another model is refused).

    IMAGES may be photos or folders of photos; several probes give one result per probe, as JSON
    lines (stdout, or --jsonl FILE) and CSV (--csv FILE), with a progress bar."""
    if bool(images) == bool(npy):
        raise click.UsageError("give either IMAGES (photos or folders) or --npy")
    where = galleries(matcher, token, ca_file)
    opened = {"key_dir": key_dir(where, gallery, key), "matcher": where}
    embedder, made = made_by(where, gallery, model, detector, npy)
    if npy:
        loaded = embeddings_file.load(npy)
        probes = list(zip(loaded.photos, loaded.embeddings))
    else:
        probes = [(str(p), p) for arg in images for p in photo_files(Path(arg))]
    if len(probes) != 1 or jsonl or csv_path:
        _identify_many(gallery, opened, probes, embedder, made, top_k, threshold, workers, jsonl, csv_path)
        return
    probe = probes[0][1] if npy else embedder.represent(probes[0][1])[0].embedding
    with Identifier.open(gallery, **opened) as ident:
        hint_layout(ident, gallery)
        result = ident.identify(probe, top_k=top_k, threshold=threshold, workers=workers, made_by=made)
        count = ident.gallery.count()
    out = {**result.to_dict(), "gallery_size": count}
    if as_json:
        emit_json(out)
        return
    verdict = (
        f"identified as {result.identity}" if result.identity else "unknown: nobody in the gallery is close enough"
    )
    click.echo(f"{verdict} ({result.metric}, threshold {result.threshold}, {count} templates searched)")
    for rank, c in enumerate(result.candidates, 1):
        click.echo(f"  {rank}. {c.name:<24} distance {c.distance:.4f}{'  (accepted)' if c.accepted else ''}")
    click.echo("timings: " + ", ".join(f"{k} {v:.0f} ms" for k, v in result.timings_ms.items()))


def _identify_many(gallery, opened, probes, embedder, made, top_k, threshold, workers, jsonl, csv_path) -> None:
    """One result per probe: JSON lines and CSV rows (a probe without a face gets its error)."""
    import csv
    import json
    import sys

    from tqdm import tqdm

    out = open(jsonl, "w") if jsonl else sys.stdout
    table = open(csv_path, "w", newline="") if csv_path else None
    writer = csv.writer(table) if table else None
    if writer:
        writer.writerow(["probe", "identity", "top1", "distance", "threshold", "accepted", "error"])
    try:
        with Identifier.open(gallery, **opened) as ident:
            for label, probe in tqdm(probes, desc="identifying", unit="probe", file=sys.stderr):
                try:
                    vector = probe if embedder is None else embedder.represent(probe)[0].embedding
                    r = ident.identify(vector, top_k=top_k, threshold=threshold, workers=workers, made_by=made)
                except CipherfaceError as exc:
                    if isinstance(exc, IntegrityError):
                        raise  # never carry on past a gallery that cannot be trusted
                    out.write(json.dumps({"probe": label, "error": str(exc)}) + "\n")
                    if writer:
                        writer.writerow([label, "", "", "", "", "", str(exc)])
                    continue
                top = r.candidates[0] if r.candidates else None
                out.write(json.dumps({"probe": label, **r.to_dict()}) + "\n")
                if writer:
                    writer.writerow(
                        [label, r.identity or "", top.name if top else "", f"{top.distance:.6f}" if top else "",
                         r.threshold, r.identity is not None, ""]
                    )  # fmt: skip
    finally:
        if jsonl:
            out.close()
        if table:
            table.close()
    where = " and ".join(p for p in (jsonl, csv_path) if p)
    if where:
        click.echo(f"identified {len(probes)} probe(s): results in {where}", err=True)


@click.group("gallery")
def gallery_group() -> None:
    """Inspect and edit an encrypted gallery."""


@gallery_group.command("info")
@click.argument("path", type=click.Path(dir_okay=False))
@matcher_options
@json_option
def gallery_info(path, matcher, token, ca_file, as_json) -> None:
    """What the matcher's gallery holds (no key needed: ids are opaque)."""
    g = galleries(matcher, token, ca_file).open(path)
    try:
        info = g.info()
    finally:
        g.close()
    if as_json:
        emit_json(info)
        return
    for k, v in info.items():
        click.echo(f"{k:>18}: {v}")


def open_identifier(path: str, key: str | None, matcher: str | None, token: str | None, ca_file: str | None):
    where = galleries(matcher, token, ca_file)
    return Identifier.open(path, key_dir(where, path, key), matcher=where)


@gallery_group.command("list")
@click.argument("path", type=click.Path(dir_okay=False))
@key_option
@matcher_options
@json_option
def gallery_list(path, key, matcher, token, ca_file, as_json) -> None:
    """Enrolled names and their number of templates (needs the key owner's folder)."""
    with open_identifier(path, key, matcher, token, ca_file) as ident:
        names = ident.names()
    if as_json:
        emit_json(names)
        return
    for name, n in names.items():
        click.echo(f"{name}\t{n}")


@gallery_group.command("verify")
@click.argument("path", type=click.Path(dir_okay=False))
@key_option
@matcher_options
@json_option
def gallery_verify(path, key, matcher, token, ca_file, as_json) -> None:
    """The key owner checks the whole gallery: settings, every seal, slot row and version, and every
    block decrypted (canaries in place, empty slots 0). Exit 3 names the first thing wrong."""
    with open_identifier(path, key, matcher, token, ca_file) as ident:
        report = ident.verify(progress=not as_json)
    if as_json:
        emit_json(report)
        return
    click.echo(f"ok: {report['blocks']} block(s), {report['identities']} identities, every seal and canary checked")


@gallery_group.command("migrate")
@click.argument("path", type=click.Path(dir_okay=False))
@click.option(
    "--layout",
    type=click.Choice(sorted(LAYOUT_CHOICES)),
    default="last-prime",
    show_default=True,
    help="How blocks are stored: at the last prime (half the bytes and scan work; where the backend can) "
    "or at two primes (every backend; results up to the parameter set's larger limit).",
)
@key_option
@matcher_options
@json_option
def gallery_migrate(path, layout, key, matcher, token, ca_file, as_json) -> None:
    """Rewrite the gallery's blocks in another layout (the key owner decrypts and re-encrypts each
    block, one commit per block; interrupted, run it again; queries stay correct meanwhile)."""
    with open_identifier(path, key, matcher, token, ca_file) as ident:
        report = ident.migrate(LAYOUT_CHOICES[layout], progress=not as_json)
    if as_json:
        emit_json(report)
        return
    click.echo(
        f"ok: {report['rewritten']} of {report['blocks']} block(s) rewritten; every block is now stored at "
        f"{layouts.NAMES[report['layout']]}"
    )


def hint_layout(ident: Identifier, gallery: str) -> None:
    """Say on stderr when a gallery is stored in an older layout than its backend allows."""
    if ident.layout != layouts.best(ident.owner.backend):
        click.echo(
            f"note: gallery {gallery} stores its blocks at {layouts.NAMES[ident.layout]}; `cipherface gallery "
            f"migrate {gallery}` stores them at {layouts.NAMES[layouts.best(ident.owner.backend)]} (half the bytes "
            "and scan time)",
            err=True,
        )


@gallery_group.command("remove")
@click.argument("path", type=click.Path(dir_okay=False))
@click.option("--name", required=True)
@key_option
@matcher_options
def gallery_remove(path, name, key, matcher, token, ca_file) -> None:
    """Remove every template of NAME; their slots are zeroed and reused by later enrolments."""
    with open_identifier(path, key, matcher, token, ca_file) as ident:
        n = ident.remove(name)
        left = ident.gallery.count()
    click.echo(f"removed {n} template(s) of {name}; {left} left")


COMMANDS = [enroll, identify, gallery_group]
