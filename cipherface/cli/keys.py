"""`cipherface keygen` and `cipherface params`: keys and parameter sets."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from cipherface.cli.options import backend_option, emit_json, given, json_option
from cipherface.errors import CipherfaceError
from cipherface.params import LEVEL_PRESETS, RLWE_SCHEMES, SCHEMES, resolve_params, schemes
from cipherface.plugins import get_backend
from cipherface.roles import PUBLIC_FILE, SECRET_FILE, KeyOwner


@click.command()
@backend_option
@click.option(
    "--security",
    type=click.Choice(["128", "192", "256"]),
    default="128",
    show_default=True,
    help="Security level; picks the smallest preset reaching it.",
)
@click.option(
    "--preset",
    default=None,
    help="A named preset of the backend's scheme instead (`cipherface params list --scheme S`).",
)
@click.option(
    "--max-dim",
    type=click.IntRange(min=1),
    default=None,
    help="Largest embedding length to support: only the Galois keys it needs are made "
    "(smaller public bundle). Default: any length up to the slot count.",
)
@click.option("--out", "out", type=click.Path(file_okay=False), required=True, help="Folder for the bundles.")
@click.option("--force", is_flag=True, help="Overwrite keys already in OUT (everything encrypted under them is lost).")
@json_option
def keygen(backend, security, preset, max_dim, out, force, as_json) -> None:
    """Generate a key set: OUT/secret.cfk (mode 0600, keep it) and OUT/public.cfk (give it to the matcher)."""
    existing = [f for f in (Path(out) / SECRET_FILE, Path(out) / PUBLIC_FILE) if f.exists()]
    if existing and not force:
        raise CipherfaceError(
            f"{existing[0]} already exists: new keys would make everything encrypted under it unreadable. "
            "Use another --out, or --force to replace it"
        )
    if preset and given("security"):
        raise click.UsageError(f"--security {security} conflicts with --preset {preset}, which sets its own level")
    params = resolve_params(preset or int(security), get_backend(backend).scheme)
    if max_dim is not None and max_dim > params.slot_count:
        raise click.BadParameter(f"{max_dim} is more than the {params.slot_count} slots", param_hint="--max-dim")
    owner = KeyOwner.generate(backend, params, max_dim=max_dim)
    secret, public = owner.save(out)
    info = {
        "backend": owner.backend.name,
        "key_id": owner.key_id,
        "params": params.to_dict(),
        "secret_bundle": str(secret),
        "public_bundle": str(public),
        "public_bundle_bytes": public.stat().st_size,
    }
    if as_json:
        emit_json(info)
    else:
        click.echo(f"key {owner.key_id} ({owner.backend.name}, {params.describe()}, {params.security_level}-bit)")
        click.echo(f"  secret bundle: {secret} (mode 0600; never leaves the key owner)")
        click.echo(f"  public bundle: {public} ({info['public_bundle_bytes'] / 1e6:.1f} MB; for the matcher)")


scheme_option = click.option(
    "--scheme", default="ckks", show_default=True, help="FHE scheme (ckks, bfv, or a plugin's)."
)


@click.group()
def params() -> None:
    """Parameter sets per scheme (CKKS, BFV) and their security."""


@params.command("check")
@scheme_option
@click.option("--poly-modulus-degree", "-n", type=int, required=True)
@click.option("--coeff-mod-bit-sizes", "-q", required=True, help="Comma-separated prime sizes, e.g. 60,40,40,60.")
@click.option("--security", type=int, required=True, help="Claimed security level (128, 192 or 256).")
@click.option("--scale-bits", type=int, default=None, help="CKKS scale (default 40).")
@click.option("--plain-modulus-bits", type=int, default=None, help="BFV plain modulus size (default 20).")
@json_option
def params_check(
    scheme, poly_modulus_degree, coeff_mod_bit_sizes, security, scale_bits, plain_modulus_bits, as_json
) -> None:
    """Exit 0 if the set meets the claimed level (HE standard) and the scheme's rules, 1 with the reasons."""
    try:
        bits = tuple(int(b) for b in coeff_mod_bit_sizes.split(","))
    except ValueError:
        raise click.BadParameter(f"expected comma-separated integers, got {coeff_mod_bit_sizes!r}") from None
    if scheme not in RLWE_SCHEMES:
        raise click.BadParameter(f"builds ring parameter sets of {', '.join(RLWE_SCHEMES)} only", param_hint="--scheme")
    params_type = SCHEMES[scheme][0]
    own, default = params_type.SETTING
    given = {"scale_bits": scale_bits, "plain_modulus_bits": plain_modulus_bits}
    for name, value in given.items():
        if value is not None and name != own:
            flag = "--" + name.replace("_", "-")
            raise click.BadParameter(f"{flag} is not a {scheme} setting (it takes --{own.replace('_', '-')})")
    p = params_type(poly_modulus_degree, bits, given[own] if given[own] is not None else default, security)
    problems = p.problems()
    if as_json:
        emit_json(
            {
                "params": p.to_dict(),
                "total_bits": p.total_bits,
                "max_log_q": p.max_log_q,
                "ok": not problems,
                "problems": problems,
            }
        )
    elif problems:
        click.echo(f"REFUSED: {'; '.join(problems)}", err=True)
    else:
        click.echo(
            f"OK: log2(q) = {p.total_bits} <= {p.max_log_q} for N={poly_modulus_degree} at {security}-bit "
            f"(depth {p.depth}, {p.slot_count} slots)"
        )
    if problems:
        sys.exit(1)


@params.command("list")
@scheme_option
@json_option
def params_list(scheme, as_json) -> None:
    """The named presets of a scheme and what they give."""
    known = schemes()
    if scheme not in known:
        raise click.BadParameter(f"unknown scheme; installed: {', '.join(known)}", param_hint="--scheme")
    rows = [
        {
            "name": name,
            "scheme": scheme,
            **p.to_dict(),
            "summary": p.describe(),
            "depth": p.depth,
            "slots": p.slot_count,
            "default_for_level": LEVEL_PRESETS[scheme].get(p.security_level) == name,
        }
        for name, p in known[scheme][1].items()
    ]
    if as_json:
        emit_json(rows)
        return
    for r in rows:
        mark = " (default)" if r["default_for_level"] else ""
        click.echo(f"{r['name']:<15} {r['summary']} {r['security_level']}-bit depth {r['depth']}{mark}")


COMMANDS = [keygen, params]
