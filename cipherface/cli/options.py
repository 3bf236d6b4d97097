"""Options and output helpers shared by the commands."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from cipherface.plugins import BACKEND_ENV

backend_option = click.option(
    "--backend",
    envvar=BACKEND_ENV,
    default=None,
    show_envvar=True,
    help="FHE backend name (default: tenseal); `cipherface backends` lists them.",
)
metric_option = click.option(
    "--metric", type=click.Choice(["cosine", "euclidean"]), default="cosine", show_default=True
)
json_option = click.option("--json", "as_json", is_flag=True, help="Machine-readable JSON output.")
threshold_option = click.option(
    "--threshold",
    type=click.FloatRange(min=0),
    default=None,
    help="Distance threshold (default: the model's for the metric).",
)


model_option = click.option(
    "--model",
    default=None,
    help="Face model: an embedder plugin's name (facenet512-casia, 512-d) or a DeepFace model (default: Dlib, 128-d).",
)
#: Photo files the commands take from folders.
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp"}
#: DeepFace's detectors that run offline here (their weights ship in installed packages).
DETECTORS = ("opencv", "dlib")
detector_option = click.option(
    "--detector",
    type=click.Choice(DETECTORS),
    default=None,
    help="Face detector in front of the model (default: opencv); recorded with every embedding.",
)


def photo_files(path: Path) -> list[Path]:
    """A photo, or every photo under a folder (sorted)."""
    if path.is_dir():
        return sorted(p for p in path.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
    return [path]


def given(name: str) -> bool:
    """Whether the user set option ``name`` (on the command line or through its variable)."""
    source = click.get_current_context().get_parameter_source(name)
    return source in (click.core.ParameterSource.COMMANDLINE, click.core.ParameterSource.ENVIRONMENT)


def refuse_ignored(option: str, wanted: str, actual: str, where: str) -> None:
    """A flag that the command would have to ignore is an error, never a silent guess."""
    if wanted != actual:
        raise click.UsageError(f"{option} {wanted} conflicts with {where}, which uses {actual}: drop {option}")


def emit_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, sort_keys=True))


def finish(report: dict[str, Any], as_json: bool, summary: str, skipped: dict[str, str]) -> None:
    """A photo command's ending: the JSON report, or each skipped photo (stderr) and a summary line."""
    if as_json:
        emit_json(report)
        return
    for photo, reason in skipped.items():
        click.echo(f"skipped {photo}: {reason}", err=True)
    click.echo(summary)


def matcher_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    """--matcher URL, --token, --ca-file: run the key owner's half here against a matcher service
    (``cipherface serve``); without --matcher, the matcher is embedded (files on this machine)."""
    fn = click.option(
        "--ca-file",
        envvar="CIPHERFACE_CA_FILE",
        type=click.Path(exists=True, dir_okay=False),
        default=None,
        help="CA certificate to verify an https:// matcher against [env CIPHERFACE_CA_FILE].",
    )(fn)
    fn = click.option(
        "--token", envvar="CIPHERFACE_TOKEN", default=None, help="Bearer token for the matcher [env CIPHERFACE_TOKEN]."
    )(fn)
    return click.option(
        "--matcher",
        envvar="CIPHERFACE_MATCHER",
        default=None,
        help="URL of a matcher service; photos, keys, names and decisions stay here [env CIPHERFACE_MATCHER].",
    )(fn)


def galleries(matcher: str | None, token: str | None, ca_file: str | None):
    """Where galleries are: a matcher service (--matcher) or files here."""
    if matcher:
        from cipherface.service import RemoteMatcher

        return RemoteMatcher(matcher, token, ca_file=ca_file)
    from cipherface.gallery.encrypted_gallery import LocalGalleries

    return LocalGalleries()
