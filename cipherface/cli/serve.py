"""`cipherface serve`: the matcher as an HTTP service, and its tokens."""

from __future__ import annotations

import click

from cipherface.cli.options import emit_json, json_option

data_option = click.option(
    "--data",
    type=click.Path(file_okay=False),
    default=None,
    help="The matcher's folder: tokens (hashes only) and each tenant's galleries and public bundles.",
)
store_option = click.option(
    "--store", default=None, envvar="CIPHERFACE_STORE", metavar="postgresql://...",
    help="Keep galleries and tokens in this PostgreSQL database (shared by several matcher nodes).",
)  # fmt: skip


def token_store(data: str | None, store: str | None):
    from cipherface.service.tokens import TokenStore

    if data is None and store is None:
        raise click.UsageError("give --data DIR or --store postgresql://... (where the service keeps its tokens)")
    return TokenStore(data, store)


@click.group("serve", invoke_without_command=True)
@click.option("--data", type=click.Path(file_okay=False), default=None, help="The matcher's data folder.")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", type=click.IntRange(0, 65535), default=8750, show_default=True)
@click.option("--certfile", type=click.Path(exists=True, dir_okay=False), default=None, help="TLS certificate (PEM).")
@click.option("--keyfile", type=click.Path(exists=True, dir_okay=False), default=None, help="TLS private key (PEM).")
@click.option(
    "--max-body", type=click.IntRange(min=1024), default=None, help="Largest request body in bytes (default 512 MiB)."
)
@store_option
@click.option(
    "--scan", default="local", show_default=True, metavar="local|dask://HOST:PORT",
    help="Where scans run: this machine's processes (--scan-workers), or a Dask scheduler's workers.",
)  # fmt: skip
@click.option("--scan-workers", type=click.IntRange(1, 64), default=1, show_default=True, help="Local scan processes.")
@click.option(
    "--resident-blocks", type=click.IntRange(min=0), default=None,
    help="Blocks of a gallery each scanning process keeps in memory (default: all); the others are streamed "
    "from the store at every scan. A block is ~33.5 MB at d=128, ~134 MB at d=512.",
)  # fmt: skip
@click.option(
    "--read-timeout", type=click.FloatRange(min=1), default=60, show_default=True,
    help="Seconds a request body may stall between two parts (then HTTP 408).",
)  # fmt: skip
@click.pass_context
def serve(
    ctx, data, host, port, certfile, keyfile, max_body, store, scan, scan_workers, resident_blocks, read_timeout
) -> None:
    """Run the matcher service (FastAPI + uvicorn; https with --certfile/--keyfile). It holds public
    bundles, encrypted galleries and opaque slot maps per tenant; never a secret key, a name, a score
    or a decision. Tokens: `cipherface serve token create --data DIR --tenant T`."""
    if ctx.invoked_subcommand is not None:
        return
    if data is None:
        raise click.UsageError("--data DIR is required to serve")
    if bool(certfile) != bool(keyfile):
        raise click.UsageError("--certfile and --keyfile go together")
    import uvicorn

    from cipherface.gallery.postgres_store import redacted
    from cipherface.service.app import DEFAULT_MAX_BODY, create_app

    app = create_app(
        data, max_body=max_body or DEFAULT_MAX_BODY, scan_workers=scan_workers, read_timeout=read_timeout,
        store=store, scan=scan, resident_blocks=resident_blocks,
    )  # fmt: skip
    scheme = "https" if certfile else "http"
    where = f"galleries in {redacted(store)}" if store else data
    click.echo(f"cipherface matcher serving {where} on {scheme}://{host}:{port} (docs at /docs)", err=True)
    uvicorn.run(
        app, host=host, port=port, ssl_certfile=certfile, ssl_keyfile=keyfile, log_level="warning",
        timeout_keep_alive=30,
    )  # fmt: skip


@serve.group("token")
def token_group() -> None:
    """Bearer tokens: one tenant each; the service stores only their hashes."""


@token_group.command("create")
@data_option
@store_option
@click.option("--tenant", required=True, help="Tenant the token acts for (its galleries are its own).")
def token_create(data, store, tenant) -> None:
    """Print a new token for TENANT (shown once: store it with the key owner)."""
    store = token_store(data, store)
    try:
        click.echo(store.create(tenant))
    finally:
        store.close()


@token_group.command("list")
@data_option
@store_option
@json_option
def token_list(data, store, as_json) -> None:
    """Token ids (a hash prefix) and their tenants; the tokens themselves are not stored."""
    store = token_store(data, store)
    try:
        rows = store.list()
    finally:
        store.close()
    if as_json:
        emit_json(rows)
        return
    for row in rows:
        click.echo(f"{row['id']}\t{row['tenant']}")


@token_group.command("revoke")
@data_option
@store_option
@click.argument("token_id")
def token_revoke(data, store, token_id) -> None:
    """Revoke the token(s) whose id (from `token list`) is TOKEN_ID; takes effect at once."""
    store = token_store(data, store)
    try:
        n = store.revoke(token_id)
    finally:
        store.close()
    click.echo(f"revoked {n} token(s)")


COMMANDS = [serve]
