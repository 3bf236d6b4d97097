"""Options and output helpers shared by the commands."""

from __future__ import annotations

import json
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


def emit_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, sort_keys=True))
