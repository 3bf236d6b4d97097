"""The ``cipherface`` command line."""

from __future__ import annotations

import sys

import click

from cipherface import interrupts
from cipherface.capabilities import DISTANCE_PRESERVING, PROBE_IN_CLEAR, enforce_disclosures
from cipherface.cli import audit, conformance, faces, gallery, keys, matching, plugins, serve
from cipherface.errors import CipherfaceError, IntegrityError
from cipherface.plugins import register_commands

#: Exit codes (README, "Exit codes").
EXIT_REFUSED = 1  # a check said no: params check, conformance, an unexpected demo answer
EXIT_ERROR = 2  # bad input or usage: the message says what and why
EXIT_INTEGRITY = 3  # a result, block or blob that cannot be genuine: nothing was decided
EXIT_INTERRUPTED = 130  # Ctrl-C: stopped, nothing committed is lost


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="cipherface")
@click.option(
    "--matcher-sees-probe",
    is_flag=True,
    help="Accept a backend that sends the probe embedding to the matcher in the clear (Paillier: "
    "encrypted gallery, plaintext probe). Refused without it; see docs/schemes.md.",
)
@click.option(
    "--matcher-sees-distances",
    is_flag=True,
    help="Accept a distance-preserving backend (DCPE): the matcher computes approximate distances "
    "between the encrypted embeddings itself and can rank and decide without the key owner. Refused "
    "without it; see docs/schemes.md.",
)
@click.pass_context
def cli(ctx: click.Context, matcher_sees_probe: bool, matcher_sees_distances: bool) -> None:
    """Face matching on CKKS-encrypted embeddings: the cloud never sees a face, a distance or a decision."""
    accepted = {PROBE_IN_CLEAR: matcher_sees_probe, DISTANCE_PRESERVING: matcher_sees_distances}
    enforce_disclosures([c for c, yes in accepted.items() if yes])
    ctx.call_on_close(lambda: enforce_disclosures(None))


for module in (plugins, keys, matching, faces, gallery, conformance, serve, audit):
    for command in module.COMMANDS:
        cli.add_command(command)
register_commands(cli)  # plugins' own commands (hook ``register_commands``)


def main() -> None:
    interrupts.install()
    try:
        cli.main(standalone_mode=False)
    except IntegrityError as exc:
        click.echo(f"integrity error: {exc}", err=True)
        sys.exit(EXIT_INTEGRITY)
    except CipherfaceError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(EXIT_ERROR)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except (click.Abort, KeyboardInterrupt):  # click turns Ctrl-C into Abort
        click.echo("interrupted", err=True)
        sys.exit(EXIT_INTERRUPTED)
