"""The ``cipherface`` command line."""

from __future__ import annotations

import sys

import click

from cipherface.cli import conformance, faces, gallery, keys, matching, plugins
from cipherface.errors import CipherfaceError


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="cipherface")
def cli() -> None:
    """Face matching on CKKS-encrypted embeddings: the cloud never sees a face, a distance or a decision."""


for module in (plugins, keys, matching, faces, gallery, conformance):
    for command in module.COMMANDS:
        cli.add_command(command)


def main() -> None:
    try:
        cli.main(standalone_mode=False)
    except CipherfaceError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(2)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except click.Abort:
        click.echo("aborted", err=True)
        sys.exit(1)
