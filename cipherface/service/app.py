"""The matcher as an HTTP service (FastAPI): per tenant, public bundles, packed encrypted
galleries (one SQLite file each, as in the embedded mode) and opaque slot maps.

It never holds a secret key, a name, a score or a decision: it stores what the key owner
sends, scans encrypted probes and returns encrypted score blocks. Binary bodies are framed
envelopes (``frames.py``); errors are JSON ``{"error": class, "message": text}`` carrying the
``CipherfaceError`` the embedded matcher would raise.
"""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Annotated, Any, TypeVar

from fastapi import Depends, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response, StreamingResponse
from fastapi_offline import FastAPIOffline
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

import cipherface
from cipherface import envelope
from cipherface.errors import (
    AuthenticationError,
    BodyTooLargeError,
    CipherfaceError,
    GalleryError,
    NotFoundError,
    RequestTimeoutError,
    StaleScanError,
    WriteConflictError,
    WrongKindError,
)
from cipherface.gallery.dask_scan import DaskScan
from cipherface.gallery.encrypted_gallery import BlockWrite, EncryptedGallery, GalleryState
from cipherface.gallery.scan import Scanner
from cipherface.gallery.store import GalleryStore, is_postgres
from cipherface.roles import Matcher
from cipherface.service import frames
from cipherface.service.tokens import TokenStore, checked_name

#: Default largest request body: a commit of two blocks of 129 ciphertexts at N=16384 fits.
DEFAULT_MAX_BODY = 512 * 1024 * 1024
#: Seconds a request body may stall between two of its parts.
DEFAULT_READ_TIMEOUT = 60.0
STATUS = {
    AuthenticationError: 401,
    RequestTimeoutError: 408,
    NotFoundError: 404,
    WriteConflictError: 409,
    StaleScanError: 409,
    BodyTooLargeError: 413,
}
T = TypeVar("T")


def status_of(exc: CipherfaceError) -> int:
    for cls in type(exc).__mro__:
        if cls in STATUS:
            return STATUS[cls]
    return 400


class Tenant:
    """One tenant's folder: galleries/NAME.db and keys/KEY_ID.cfk (public bundles only); with a
    PostgreSQL ``store``, its galleries are there instead, named TENANT/NAME."""

    def __init__(self, root: Path, name: str, store: str | None = None) -> None:
        self.name = name
        self.root = root / "tenants" / name
        self.store = store

    def gallery_path(self, name: str) -> str:
        """The gallery's store location."""
        name = checked_name(name, "gallery name")
        if self.store:
            return f"{self.store}#{self.name}/{name}"
        return str(self.root / "galleries" / f"{name}.db")

    def key_path(self, key_id: str) -> Path:
        return self.root / "keys" / f"{checked_name(key_id, 'key id')}.cfk"

    def galleries(self) -> list[str]:
        if self.store:
            from cipherface.gallery.postgres_store import names

            return [n.split("/", 1)[1] for n in names(self.store, prefix=f"{self.name}/")]
        folder = self.root / "galleries"
        return sorted(p.stem for p in folder.glob("*.db")) if folder.is_dir() else []


def short_name(location: str) -> str:
    """A gallery's name as its tenant knows it, from its store location."""
    return location.rsplit("/", 1)[-1] if "#" in location else Path(location).stem


def error_response(exc: CipherfaceError) -> JSONResponse:
    """The JSON answer of a refusal: the error's class and message, and its HTTP status."""
    return JSONResponse({"error": type(exc).__name__, "message": str(exc)}, status_code=status_of(exc))


class BodyGuard:
    """Every request body, JSON or framed, announced or chunked: refused past ``max_body`` bytes
    (413), and past ``read_timeout`` seconds without a part while it is still arriving (408)."""

    def __init__(self, app: Any, max_body: int, read_timeout: float) -> None:
        self.app, self.max_body, self.read_timeout = app, max_body, read_timeout

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        length = dict(scope.get("headers", [])).get(b"content-length", b"")
        if length.isdigit() and int(length) > self.max_body:
            limit = self.max_body
            exc = BodyTooLargeError(f"request body of {int(length)} bytes is over this service's limit of {limit}")
            await error_response(exc)(scope, receive, send)
            return
        seen, done = 0, False

        async def guarded() -> dict[str, Any]:
            nonlocal seen, done
            if done:  # the body is in: what follows is the wait for a disconnect, which may be long
                return await receive()
            try:
                message = await asyncio.wait_for(receive(), self.read_timeout)
            except TimeoutError:
                raise RequestTimeoutError(f"no part of the request body came for {self.read_timeout:g} s") from None
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                done = not message.get("more_body", False)
                if seen > self.max_body:
                    raise BodyTooLargeError(f"request body is over this service's limit of {self.max_body} bytes")
            return message

        await self.app(scope, guarded, send)


def _tenant(request: Request) -> Tenant:
    """The tenant of the request's bearer token (401 without a known one)."""
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    name = request.app.state.tokens.tenant_of(token.strip()) if scheme.lower() == "bearer" and token else None
    if name is None:
        raise AuthenticationError("a valid bearer token is required (`cipherface serve token create`)")
    return Tenant(request.app.state.root, name, request.app.state.store)


TenantDep = Annotated[Tenant, Depends(_tenant)]


def state_body(gallery: EncryptedGallery, state: GalleryState, since: int | None) -> dict[str, Any]:
    """A gallery state as JSON: generation, slot rows, seals. For a client that holds generation
    ``since``: nothing more when it is current, else only the blocks rewritten after it (the
    key owner checks the merged state as a whole, seals against its own versions)."""
    if since == state.generation:
        return {"generation": state.generation, "unchanged": True}
    changed = gallery.changed_since(since)
    blocks = sorted(state.seals) if changed is None else sorted(set(changed) & set(state.seals))
    body: dict[str, Any] = {
        "generation": state.generation,
        "slots": [[i, b, s] for b in blocks for s, i in state.slots.get(b, {}).items()],
        "seals": {str(b): state.seals[b] for b in blocks},
    }
    if changed is not None:
        body.update(since=since, blocks=blocks)
    return body


class Registry:
    """Open galleries and matchers, one lock each: requests on one gallery run one at a time (the
    FHE libraries hold the GIL anyway), requests on different galleries in parallel threads."""

    def __init__(self, scan_workers: int, scanner: Scanner | None = None, resident: int | None = None) -> None:
        self.scan_workers = scan_workers
        self.scanner = scanner
        self.resident = resident
        self._lock = threading.Lock()
        self._galleries: dict[str, tuple[EncryptedGallery, threading.Lock]] = {}
        self._matchers: dict[Path, Matcher] = {}

    def run(self, location: str, fn: Callable[[EncryptedGallery], T]) -> T:
        with self._lock:
            entry = self._galleries.get(location)
            if entry is None:
                if not GalleryStore.exists(location):
                    raise NotFoundError(f"no gallery named {short_name(location)!r}")
                entry = (EncryptedGallery.open(location), threading.Lock())
                entry[0].bound_memory(self.resident)
                entry[0].use_scanner(self.scanner)
                self._galleries[location] = entry
        gallery, lock = entry
        with lock:
            return fn(gallery)

    def create(self, location: str, bundle: bytes, meta: dict[str, Any]) -> None:
        with self._lock:  # two clients racing to make the same name: one wins, one is told
            if GalleryStore.exists(location):
                raise GalleryError(f"gallery {short_name(location)!r} already exists")
            EncryptedGallery.create(location, bundle, meta).close()

    def delete(self, location: str) -> None:
        if not GalleryStore.exists(location):
            raise NotFoundError(f"no gallery named {short_name(location)!r}")
        self.forget(location)
        GalleryStore.delete(location)

    def forget(self, path: Any) -> None:
        with self._lock:
            entry = self._galleries.pop(path, None)
            self._matchers.pop(path, None)
        if entry is not None:
            with entry[1]:
                entry[0].close()

    def matcher(self, path: Path) -> Matcher:
        with self._lock:
            if path not in self._matchers:
                if not path.is_file():
                    raise NotFoundError(f"no public bundle for key {path.stem!r} here: upload it first")
                self._matchers[path] = Matcher(path)
            return self._matchers[path]

    def close(self) -> None:
        for path in list(self._galleries):
            self.forget(path)
        if self.scanner is not None:
            self.scanner.close()


def create_app(
    data_dir: str | Path,
    *,
    max_body: int = DEFAULT_MAX_BODY,
    scan_workers: int = 1,
    read_timeout: float = DEFAULT_READ_TIMEOUT,
    store: str | None = None,
    scan: str = "local",
    resident_blocks: int | None = None,
) -> FastAPIOffline:
    """The service over ``data_dir`` (tokens.db and tenants/...): request bodies up to ``max_body``
    bytes, each part of one due within ``read_timeout`` seconds; galleries in ``data_dir`` or in the
    PostgreSQL database ``store`` (``postgresql://...``); scans on ``scan_workers`` local processes
    (``scan="local"``) or on the Dask scheduler ``scan="dask://HOST:PORT"``, each scanning process
    keeping at most ``resident_blocks`` blocks of a gallery deserialised (None: all; the rest are
    streamed from the store at every scan)."""
    root = Path(data_dir).resolve()
    root.mkdir(parents=True, exist_ok=True)
    if store is not None and not is_postgres(store):
        raise GalleryError(f"--store takes a postgresql://... URL, not {store!r}")
    scanner = None
    if scan != "local":
        if not scan.startswith(("dask://", "tcp://")):
            raise GalleryError(f"--scan is 'local' or dask://HOST:PORT, not {scan!r}")
        scanner = DaskScan(scan, resident=resident_blocks)
    tokens = TokenStore(root, store)
    registry = Registry(scan_workers, scanner, resident_blocks)

    @asynccontextmanager
    async def lifespan(app: FastAPIOffline) -> AsyncIterator[None]:
        yield
        registry.close()
        tokens.close()

    app = FastAPIOffline(
        lifespan=lifespan,
        title="cipherface matcher",
        version=cipherface.__version__,
        description="The untrusted half of encrypted face matching: it stores and scans ciphertexts only.",
    )
    app.state.registry, app.state.tokens, app.state.root, app.state.store = registry, tokens, root, store

    @app.exception_handler(CipherfaceError)
    async def _error(request: Request, exc: CipherfaceError) -> JSONResponse:
        return error_response(exc)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        # FastAPI turns an error raised while it reads a JSON body (over the limit, stalled) into a
        # 400; the client gets the refusal itself. Other HTTP errors keep their status.
        if isinstance(exc.__cause__, CipherfaceError):
            return error_response(exc.__cause__)
        return JSONResponse({"error": "ServiceError", "message": str(exc.detail)}, status_code=exc.status_code)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        return JSONResponse({"error": "ServiceError", "message": f"malformed request: {exc.errors()[:3]}"}, 422)

    app.add_middleware(BodyGuard, max_body=max_body, read_timeout=read_timeout)

    async def read_frames(request: Request) -> list[bytes]:
        return await frames.aread(request.stream(), max_body)

    def framed(parts: list[bytes]) -> StreamingResponse:
        return StreamingResponse(frames.encode(parts), media_type=frames.MEDIA_TYPE)

    # ------------------------------------------------------------------ health
    @app.get("/health", tags=["service"])
    def health() -> dict[str, Any]:
        """Liveness (no token needed)."""
        return {"status": "ok", "version": cipherface.__version__}

    # --------------------------------------------------------------- galleries
    @app.get("/v1/galleries", tags=["galleries"])
    def list_galleries(t: TenantDep) -> dict[str, Any]:
        return {"galleries": t.galleries()}

    @app.put("/v1/galleries/{name}", status_code=201, tags=["galleries"])
    async def create_gallery(name: str, request: Request, t: TenantDep) -> dict[str, Any]:
        """Body: frames [settings JSON (the key owner's, MAC included), public bundle]."""
        path = t.gallery_path(name)
        parts = await read_frames(request)
        if len(parts) != 2:
            raise GalleryError("a new gallery is two frames: its settings and its public bundle")
        meta, bundle = frames.read_header(parts[0]), parts[1]
        if envelope.decode(bundle).kind != envelope.PUBLIC_BUNDLE:
            raise WrongKindError("a gallery is created with a public bundle, never a secret one")

        await run_in_threadpool(registry.create, path, bundle, meta)
        return {"created": name}

    @app.delete("/v1/galleries/{name}", tags=["galleries"])
    def delete_gallery(name: str, t: TenantDep) -> dict[str, Any]:
        registry.delete(t.gallery_path(name))
        return {"deleted": name}

    @app.get("/v1/galleries/{name}", tags=["galleries"])
    def gallery_info(name: str, t: TenantDep) -> dict[str, Any]:
        """Settings (as the key owner signed them) and what the gallery holds."""

        def info(g: EncryptedGallery) -> dict[str, Any]:
            return {"meta": g.meta(), "info": {**g.info(), "path": name}}

        return registry.run(t.gallery_path(name), info)

    @app.get("/v1/galleries/{name}/bundle", tags=["galleries"])
    def gallery_bundle(name: str, t: TenantDep) -> Response:
        bundle = registry.run(t.gallery_path(name), lambda g: g.public_bundle())
        return Response(bundle, media_type=frames.MEDIA_TYPE)

    @app.get("/v1/galleries/{name}/state", tags=["galleries"])
    def gallery_state(name: str, t: TenantDep, since: int | None = None) -> dict[str, Any]:
        """Generation, slot rows and seals; only the generation when it is still ``since``."""
        return registry.run(t.gallery_path(name), lambda g: state_body(g, g.state(), since))

    @app.post("/v1/galleries/{name}/locate", tags=["galleries"])
    def locate(name: str, ids: list[str], t: TenantDep) -> dict[str, Any]:
        return {"rows": registry.run(t.gallery_path(name), lambda g: g.locate(ids))}

    @app.post("/v1/galleries/{name}/blocks", tags=["galleries"])
    def read_blocks(name: str, blocks: list[int], t: TenantDep) -> StreamingResponse:
        """Blocks as stored: frames [header JSON (seal, slot rows, count per block), blobs...]."""
        found = registry.run(t.gallery_path(name), lambda g: g.read_blocks(blocks))
        head = [
            {"block": b, "seal": s.seal, "slots": [[slot, i] for slot, i in s.slots.items()], "count": len(s.blobs)}
            for b, s in found.items()
        ]
        return framed([frames.header({"blocks": head})] + [blob for s in found.values() for blob in s.blobs])

    @app.post("/v1/galleries/{name}/commit", tags=["galleries"])
    async def commit(name: str, request: Request, t: TenantDep) -> dict[str, Any]:
        """The key owner's rewritten blocks and slot rows, in one transaction. Body: frames
        [header JSON {request, writes: [{block, seal, read_seal, count}], add, remove}, blobs...];
        a ``request`` id seen before is not committed twice."""
        path = t.gallery_path(name)
        parts = await read_frames(request)
        if not parts:
            raise GalleryError("a commit needs a header frame")
        head, blobs = frames.read_header(parts[0]), parts[1:]
        try:
            writes, at = {}, 0
            for w in head["writes"]:
                count = int(w["count"])
                writes[int(w["block"])] = BlockWrite(blobs[at : at + count], str(w["seal"]), w["read_seal"])
                at += count
            add = [(str(i), int(b), int(s)) for i, b, s in head.get("add", [])]
            remove = [str(i) for i in head.get("remove", [])]
            req = head.get("request")
        except (KeyError, TypeError, ValueError) as exc:
            raise GalleryError(f"malformed commit header: {exc}") from None
        if at != len(blobs) or not (req is None or (isinstance(req, str) and 16 <= len(req) <= 64)):
            raise GalleryError("the commit's header does not describe its blobs, or its request id is malformed")
        await run_in_threadpool(registry.run, path, lambda g: g.commit(writes, add, remove, request=req))
        return {"committed": True}

    @app.post("/v1/galleries/{name}/scan", tags=["galleries"])
    async def scan(name: str, request: Request, t: TenantDep, since: int | None = None) -> StreamingResponse:
        """An encrypted probe (frames: its component ciphertexts) in; frames [header JSON
        {generation, count, the state of that generation as /state gives it}, one encrypted score
        block per gallery block] out: scores and slot map from one commit, in one round trip."""
        path = t.gallery_path(name)
        probe = await read_frames(request)

        def scanned(g: EncryptedGallery) -> tuple[list[bytes], dict[str, Any]]:
            results, state = g.scan_with_state(probe, workers=registry.scan_workers)
            return results, state_body(g, state, since)

        results, body = await run_in_threadpool(registry.run, path, scanned)
        return framed([frames.header({**body, "count": len(results)}), *results])

    # -------------------------------------------------------------------- 1:1
    @app.put("/v1/keys/{key_id}", status_code=201, tags=["1:1"])
    async def put_key(key_id: str, request: Request, t: TenantDep) -> dict[str, Any]:
        """Upload a public bundle for 1:1 comparisons under ``key_id`` (a secret bundle is refused)."""
        path = t.key_path(key_id)
        bundle = await request.body()

        def store() -> None:
            Matcher(bundle)  # refuses a secret bundle and anything that is no public bundle
            env = envelope.decode(bundle)
            if env.key_id != key_id:
                raise GalleryError(f"this public bundle is for key {env.key_id}, not {key_id}")
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(".tmp")
            tmp.write_bytes(bundle)
            os.replace(tmp, path)
            registry.forget(path)

        await run_in_threadpool(store)
        return {"key_id": key_id}

    @app.get("/v1/keys/{key_id}", tags=["1:1"])
    def get_key(key_id: str, t: TenantDep) -> dict[str, Any]:
        """Whether a public bundle is held for ``key_id``, and its size."""
        path = t.key_path(key_id)
        if not path.is_file():
            raise NotFoundError(f"no public bundle for key {key_id!r} here: upload it first")
        return {"key_id": key_id, "bytes": path.stat().st_size}

    @app.post("/v1/keys/{key_id}/distance", tags=["1:1"])
    async def distance(key_id: str, request: Request, t: TenantDep) -> Response:
        """Frames [ciphertext A, ciphertext B] in; the encrypted distance (a result envelope) out."""
        path = t.key_path(key_id)
        parts = await read_frames(request)
        if len(parts) != 2:
            raise GalleryError("a 1:1 comparison is two frames: two encrypted embeddings")
        result = await run_in_threadpool(lambda: registry.matcher(path).distance(*parts))
        return Response(result, media_type=frames.MEDIA_TYPE)

    return app
