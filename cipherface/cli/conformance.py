"""`cipherface conformance BACKEND`: the conformance suite on any installed backend."""

from __future__ import annotations

import sys

import click

from cipherface.cli.options import emit_json, json_option


@click.command()
@click.argument("backend")
@click.option("-k", "keyword", default=None, help="Only tests whose name matches this pytest -k expression.")
@click.option(
    "--params",
    "param_specs",
    multiple=True,
    metavar="N:BITS,...:SCALE:LEVEL",
    help="Also check this parameter set (e.g. 8192:60,40,40,60:40:128) for acceptance and precision; repeatable.",
)
@json_option
def conformance(backend, keyword, param_specs, as_json) -> None:
    """Run the backend conformance suite on BACKEND; a pass/fail table per capability."""
    from cipherface.params import CKKSParams
    from cipherface.testing.runner import run_conformance

    report = run_conformance(backend, keyword, {spec: CKKSParams.parse(spec) for spec in param_specs})
    if as_json:
        emit_json(report)
    else:
        click.echo(f"conformance of backend {report['backend']!r}")
        width = max(len("capability"), *map(len, report["capabilities"]))
        click.echo(f"  {'capability':<{width}} {'passed':>6} {'failed':>6} {'skipped':>7}  status")
        for cap, r in report["capabilities"].items():
            status = "PASS" if not r["failed"] else "FAIL"
            click.echo(f"  {cap:<{width}} {r['passed']:>6} {r['failed']:>6} {r['skipped']:>7}  {status}")
            for f in r["failures"]:
                click.echo(f"      {f['test']}: {f['message']}")
        click.echo("all capabilities pass" if report["ok"] else "the backend FAILS the conformance suite")
    if not report["ok"]:
        sys.exit(1)


COMMANDS = [conformance]
