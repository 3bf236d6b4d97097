"""`cipherface backends`: what is installed."""

from __future__ import annotations

import click

from cipherface.cli.options import emit_json, json_option
from cipherface.plugins import distributions, registry


@click.command()
@json_option
def backends(as_json: bool) -> None:
    """List installed backends, embedders and protocols, with versions."""
    reg = registry()
    dists = distributions()

    def plugin(obj) -> str:
        return dists.get(obj.__module__.split(".")[0], f"cipherface {_core_version()} (built-in)")

    data = {
        "backends": [
            {
                "name": name,
                "library_version": cls.library_version(),
                "plugin": plugin(cls),
                "scheme": cls.scheme,
                "capabilities": sorted(cls.capabilities),
                "thread_safe": cls.thread_safe,
            }
            for name, cls in sorted(reg.backends.items())
        ],
        "embedders": [{"name": name, "plugin": plugin(cls)} for name, cls in sorted(reg.embedders.items())],
        "protocols": [
            {
                "name": name,
                "value": p.value_name,
                "depth": p.depth,
                "requires": sorted(p.requires),
                "gallery_requires": sorted(p.gallery_requires),
            }
            for name, p in sorted(reg.protocols.items())
        ],
    }
    if as_json:
        emit_json(data)
        return
    click.echo("backends:")
    for b in data["backends"]:
        click.echo(f"  {b['name']:<17} library {b['library_version']:<10} plugin {b['plugin']}")
        click.echo(f"  {'':<17} {b['scheme']}: {', '.join(b['capabilities'])}")
    click.echo("embedders:")
    for e in data["embedders"]:
        click.echo(f"  {e['name']:<17} {e['plugin']}")
    click.echo("protocols:")
    for p in data["protocols"]:
        click.echo(f"  {p['name']:<17} {p['value']} (depth {p['depth']}; needs {', '.join(p['requires'])})")
        click.echo(f"  {'':<17} on exact backends (BFV): quantised to 8 bits, needs exact instead of approximate")
        click.echo(f"  {'':<17} on probe-in-clear backends (Paillier): one inner product with the clear probe row")


def _core_version() -> str:
    from cipherface import __version__

    return __version__


COMMANDS = [backends]
