"""Commands on photos: `verify`, `evaluate` and the `demo`."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import click

from cipherface.cli.matching import matcher_for
from cipherface.cli.options import (
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
from cipherface.errors import CipherfaceError
from cipherface.evaluation import evaluate as run_evaluation
from cipherface.evaluation import write_report
from cipherface.plugins import embedder_for
from cipherface.roles import KeyOwner, Matcher
from cipherface.samples import describe, sample_path
from cipherface.verification import verify as run_verification


def key_parties(key: str | None, backend: str | None, dim: int, remote=None) -> tuple[KeyOwner, Matcher, float]:
    """Key owner and matcher from a key folder, or freshly generated keys (Galois keys for ``dim`` only);
    with ``remote`` (a ``RemoteMatcher``), the matcher is that service, given the public bundle."""
    start = time.perf_counter()
    if key:
        owner = KeyOwner.load(key)
        if backend is not None and given("backend"):
            refuse_ignored("--backend", backend, owner.backend.name, f"the key in {key}")
        matcher = matcher_for(owner, key)
    else:
        owner = KeyOwner.generate(backend, max_dim=dim)
        matcher = Matcher(owner.public_bundle())
    if remote is not None:
        matcher = remote.for_key(owner.public_bundle())
    return owner, matcher, round((time.perf_counter() - start) * 1000, 2)


@click.command()
@click.argument("image_a", type=click.Path(exists=True, dir_okay=False))
@click.argument("image_b", type=click.Path(exists=True, dir_okay=False))
# IMAGE_A/IMAGE_B may also be embedding files (`cipherface embed`): their faces are not embedded again
@backend_option
@metric_option
@model_option
@detector_option
@threshold_option
@click.option("--key", type=click.Path(exists=True), default=None, help="Key folder (default: fresh keys).")
@click.option("--all-faces", is_flag=True, help="Compare every face of A with every face of B.")
@matcher_options
@json_option
def verify(
    image_a, image_b, backend, metric, model, detector, threshold, key, all_faces, matcher, token, ca_file, as_json
) -> None:
    """Are the faces in two photos the same person? Decided on encrypted embeddings. Either photo may
    be an embedding file from `cipherface embed` instead (its model is used unless --model says)."""
    from cipherface.embeddings_file import FileAwareEmbedder, model_of

    embedder = FileAwareEmbedder(embedder_for(model or model_of(image_a, image_b), detector))
    model = embedder.describe()["model"]
    remote = galleries(matcher, token, ca_file) if matcher else None
    owner, matcher, keys_ms = key_parties(key, backend, embedder.dim, remote)
    result = run_verification(
        owner, matcher, embedder, image_a, image_b, metric=metric, threshold=threshold, all_faces=all_faces
    )
    result.timings_ms = {"keys": keys_ms, **result.timings_ms}
    best = min(result.comparisons, key=lambda c: c.decision.distance)
    area = lambda f: dict(zip("xywh", map(int, f.box)))  # noqa: E731
    out = {
        **result.to_dict(),
        "backend": owner.backend.name,
        "model": model,
        "detector": embedder.detector,
        "image_a": image_a,
        "image_b": image_b,
        # DeepFace.verify's keys, for users who know them
        "verified": result.same_person,
        "distance": best.decision.distance,
        "threshold": best.decision.threshold,
        "detector_backend": embedder.detector,
        "similarity_metric": metric,
        "facial_areas": {"img1": area(result.faces_a[best.face_a]), "img2": area(result.faces_b[best.face_b])},
    }
    if as_json:
        emit_json(out)
        return
    for label, path, faces in (("A", image_a, result.faces_a), ("B", image_b, result.faces_b)):
        used = "all" if all_faces else "the largest"
        click.echo(f"{label}: {path}: {len(faces)} face(s), using {used} (box x,y,w,h = {faces[0].box})")
    for c in result.comparisons:
        d = c.decision
        verdict = "SAME person" if d.same_person else "different people"
        click.echo(
            f"  face A#{c.face_a} vs B#{c.face_b}: {metric} distance {d.distance:.4f} "
            f"(threshold {d.threshold}) -> {verdict}"
        )
    click.echo(
        f"decision: {'SAME person' if result.same_person else 'DIFFERENT people'} ({owner.backend.name}, {model})"
    )
    click.echo("timings: " + ", ".join(f"{k} {v:.0f} ms" for k, v in result.timings_ms.items()))


@click.command()
@click.option(
    "--pairs",
    "pairs_csv",
    required=True,
    type=click.Path(exists=True, dir_okay=False),
    help="CSV with image_a,image_b,same_person.",
)
@click.option("--images", required=True, type=click.Path(exists=True, file_okay=False), help="Folder of the photos.")
@backend_option
@click.option(
    "--metric",
    "metrics",
    type=click.Choice(["cosine", "euclidean"]),
    multiple=True,
    help="Metric(s) to evaluate (default: both).",
)
@model_option
@detector_option
@click.option(
    "--out",
    default="evaluation",
    show_default=True,
    type=click.Path(file_okay=False),
    help="Folder for summary.json and roc.png.",
)
@json_option
def evaluate(pairs_csv, images, backend, metrics, model, detector, out, as_json) -> None:
    """Accuracy on labelled pairs, plaintext vs encrypted, with a ROC plot and a JSON summary."""
    embedder = embedder_for(model, detector)
    model = embedder.describe()["model"]
    owner, _, _ = key_parties(None, backend, embedder.dim)
    summary = run_evaluation(
        owner, embedder, pairs_csv, images, list(metrics) or ["cosine", "euclidean"], progress=not as_json
    )
    js, png = write_report(summary, out)
    if as_json:
        emit_json(__import__("json").loads(js.read_text()))
        return
    click.echo(
        f"{summary['pairs_evaluated']}/{summary['pairs_total']} pairs, backend {summary['backend']}, "
        f"model {model}; {len(summary['images_without_face'])} photo(s) without a face"
    )
    for name, m in summary["metrics"].items():
        p, e = m["plaintext"], m["encrypted"]
        click.echo(
            f"  {name:<9} threshold {m['threshold']:<6} accuracy plaintext {p['accuracy']:.4f} "
            f"encrypted {e['accuracy']:.4f}  FMR {e['false_match_rate']:.4f} "
            f"FNMR {e['false_non_match_rate']:.4f}  agreement {m['decision_agreement']:.4f}  "
            f"max |enc-plain| {m['max_abs_error']:.2e}"
        )
        if "float_plaintext" in m:  # exact arithmetic: the plaintext above is the quantised model
            click.echo(
                f"  {'':<9} {m['quantisation']['bits']}-bit quantisation: float plaintext accuracy "
                f"{m['float_plaintext']['accuracy']:.4f}, agreement with it {m['float_decision_agreement']:.4f}"
            )
    click.echo(f"wrote {js} and {png}")


@click.command()
@click.argument("photos", nargs=-1, required=True, type=click.Path(exists=True))
@click.option("--out", required=True, type=click.Path(dir_okay=False), help="The .npz file to write.")
@model_option
@detector_option
@click.option("--all-faces", is_flag=True, help="Every face of each photo (default: the largest).")
@json_option
def embed(photos, out, model, detector, all_faces, as_json) -> None:
    """Embed PHOTOS (files or folders) once into an .npz: embeddings, boxes, detector confidence, model
    and detector; `enroll --npy`, `identify --npy` and `distance` take it instead of photos."""
    from tqdm import tqdm

    from cipherface import embeddings_file

    files = [p for arg in photos for p in photo_files(Path(arg))]
    if not files:
        raise CipherfaceError(f"no photos in {', '.join(photos)}")
    embedder = embedder_for(model, detector)
    rows, skipped = [], {}
    for photo in tqdm(files, desc="embedding photos", unit="photo", disable=as_json or len(files) < 2):
        try:
            faces = embedder.represent(photo)
        except CipherfaceError as exc:
            skipped[str(photo)] = str(exc)
            continue
        rows += [(str(photo), i, face) for i, face in enumerate(faces if all_faces else faces[:1])]
    if not rows:
        raise CipherfaceError(f"no face in any photo: {skipped}")
    info = embedder.describe()
    path = embeddings_file.save(out, rows, info)
    report = {"out": str(path), "embeddings": len(rows), "photos": len(files), "skipped": skipped, **info}
    summary = (
        f"wrote {len(rows)} embedding(s) of {len(files) - len(skipped)} photo(s) to {path} "
        f"({info['model']}, d={info['dim']}, detector {info['detector']})"
    )
    finish(report, as_json, summary, skipped)


@click.command()
@backend_option
@metric_option
@click.option(
    "--photos",
    type=click.Path(file_okay=False),
    default=None,
    help="Also verify img1/img2/img3.jpg from this folder (e.g. ../shared/data/faces).",
)
def demo(backend, metric, photos) -> None:
    """Encrypted face verification on real photos shipped by registry packages."""
    import cv2

    click.echo("== cipherface demo: the matcher sees only ciphertexts ==")
    embedder = embedder_for()
    owner, matcher, keys_ms = key_parties(None, backend, embedder.dim)
    click.echo(
        f"key owner: {owner.backend.name} keys, {owner.backend.params.describe()}, "
        f"{owner.backend.security_level}-bit, made in {keys_ms:.0f} ms; "
        f"matcher got the public bundle ({len(owner.public_bundle()) / 1e6:.1f} MB, no secret key)"
    )
    astronaut = sample_path("astronaut")
    mirrored = cv2.resize(cv2.flip(cv2.imread(str(astronaut)), 1), None, fx=0.8, fy=0.8)
    cases = [
        ("astronaut vs a mirrored, resized copy", astronaut, mirrored, False, True),
        ("astronaut vs Tom Hanks", astronaut, sample_path("tom_hanks"), False, False),
        ("astronaut vs every face in a group photo", astronaut, sample_path("group"), True, False),
    ]
    if photos:
        folder = Path(photos)
        cases += [
            ("img1 vs img2 (same person, different photos)", folder / "img1.jpg", folder / "img2.jpg", False, True),
            ("img1 vs img3 (different people)", folder / "img1.jpg", folder / "img3.jpg", False, False),
        ]
    click.echo(
        f"photos: {describe('astronaut')}; {describe('tom_hanks')}; {describe('group')}"
        + (f"; {photos}" if photos else "")
    )
    wrong = 0
    for title, a, b, all_faces, expected in cases:
        r = run_verification(owner, matcher, embedder, a, b, metric=metric, all_faces=all_faces)
        best = min(r.comparisons, key=lambda c: c.decision.distance).decision
        verdict = "SAME person" if r.same_person else "different people"
        ok = r.same_person == expected
        wrong += not ok
        click.echo(
            f"  {title:<48} {len(r.comparisons):>2} encrypted comparison(s), closest {metric} distance "
            f"{best.distance:.4f} (threshold {best.threshold}) -> {verdict} {'ok' if ok else 'UNEXPECTED'}"
            f"  [{sum(r.timings_ms.values()):.0f} ms]"
        )
    try:
        embedder.represent(sample_path("camera"))
    except CipherfaceError as exc:
        click.echo(f"  a photo with no frontal face is a clear error: {exc}")
    wrong += _demo_identification(embedder, mirrored)
    click.echo("the key owner decrypted only the distances; the matcher never held a key that could.")
    if wrong:
        sys.exit(1)


def _files(folder: Path) -> str:
    return ", ".join(sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file()))


def _demo_identification(embedder, mirrored) -> int:
    """1:N through a matcher service started as a process of its own on 127.0.0.1: a small packed
    gallery of the sample people plus synthetic strangers; returns 1 if the answer is wrong."""
    import tempfile

    import numpy as np

    from cipherface.identification import Identifier
    from cipherface.service import RemoteMatcher
    from cipherface.service.process import running, serve_command
    from cipherface.service.tokens import TokenStore

    faces = [
        ("astronaut", embedder.represent(sample_path("astronaut"))[0].embedding),
        ("tom_hanks", embedder.represent(sample_path("tom_hanks"))[0].embedding),
    ]
    faces += [(f"group-{i}", f.embedding) for i, f in enumerate(embedder.represent(sample_path("group")))]
    rng = np.random.default_rng(0)
    strangers = rng.normal(size=(2000, embedder.dim))
    strangers *= np.linalg.norm(faces[0][1]) / np.linalg.norm(strangers, axis=1, keepdims=True)
    names = [n for n, _ in faces] + [f"stranger-{i}" for i in range(len(strangers))]
    with tempfile.TemporaryDirectory() as tmp:
        matcher_dir, owner_dir = Path(tmp) / "matcher", Path(tmp) / "key-owner"
        tokens = TokenStore(matcher_dir)
        token = tokens.create("demo")
        tokens.close()
        command, url = serve_command(matcher_dir)
        with (
            running(command, url),
            RemoteMatcher(url, token) as remote,
            Identifier.open("people", owner_dir, create=True, dim=embedder.dim, matcher=remote) as ident,
        ):
            click.echo(f"  1:N: matcher service started as a separate process at {url} (its own folder, a token)")
            ident.enroll(names, [e for _, e in faces] + list(strangers), progress=False)
            result = ident.identify(embedder.represent(mirrored)[0].embedding, top_k=3)
            info = ident.gallery.info()
            click.echo(
                f"      the matcher holds: {_files(matcher_dir)} (public bundle, blocks, opaque ids, token hashes)"
            )
            click.echo(f"      the key owner holds: {_files(owner_dir)} (secret key, names, block versions)")
    ok = result.identity == "astronaut"
    click.echo(
        f"      the mirrored astronaut against an encrypted gallery of {info['identities']} templates "
        f"({info['blocks']} packed block(s)) -> {result.identity or 'unknown'} "
        f"{'ok' if ok else 'UNEXPECTED'}  [{sum(result.timings_ms.values()):.0f} ms; the matcher saw opaque ids only]"
    )
    return 0 if ok else 1


COMMANDS = [verify, evaluate, embed, demo]
