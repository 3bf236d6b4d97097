"""The key owner's client of a matcher service: ``RemoteMatcher`` finds, makes and opens galleries
there, and ``RemoteGallery`` is used by the identification code exactly like a local gallery file.

Nothing secret goes over the wire: public bundles, the key owner's sealed settings and blocks,
encrypted probes out; encrypted score blocks, slot rows and seals back, all of which the key
owner checks (``gallery/custody.py``) as it does for a local file. A commit carries a request
id, so a retry after a lost answer is not enrolled twice.
"""

from __future__ import annotations

import os
import secrets
import ssl
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any, TypeVar

import httpx

from cipherface import envelope, errors
from cipherface.errors import CipherfaceError, IntegrityError, NotFoundError, ServiceError
from cipherface.gallery.encrypted_gallery import BlockWrite, GalleryState, StoredBlock
from cipherface.service import frames

#: Environment variables the CLI reads (``--matcher``, ``--token``, ``--ca-file``).
MATCHER_ENV, TOKEN_ENV, CA_ENV = "CIPHERFACE_MATCHER", "CIPHERFACE_TOKEN", "CIPHERFACE_CA_FILE"
#: Largest frame a client accepts in an answer (a score block at N=32768 is ~2 MB).
MAX_FRAME = 256 * 1024 * 1024
#: Attempts of a request that failed in transport (connection refused or reset, timeout).
ATTEMPTS = 3
T = TypeVar("T")


def _error(response: httpx.Response) -> CipherfaceError:
    """The CipherfaceError a JSON error answer carries (its class, its message)."""
    try:
        body = response.json()
        name, message = body["error"], body["message"]
    except (ValueError, KeyError, TypeError):
        return ServiceError(f"the matcher answered HTTP {response.status_code} outside the protocol")
    cls = getattr(errors, str(name), None)
    if not (isinstance(cls, type) and issubclass(cls, CipherfaceError)):
        cls = ServiceError
    return cls(str(message))


def _body_size(request: httpx.Request) -> int:
    try:
        return len(request.content)
    except httpx.RequestNotRead:  # streamed from an iterator: not kept
        return 0


class RemoteMatcher:
    """A matcher service at ``url``, as one tenant (its bearer ``token``)."""

    def __init__(
        self, url: str, token: str | None = None, *, ca_file: str | None = None, timeout: float = 600.0
    ) -> None:
        token = token or os.environ.get(TOKEN_ENV)
        if not token:
            raise ServiceError(f"a matcher service needs a bearer token: --token or ${TOKEN_ENV}")
        if not url.startswith(("http://", "https://")):
            raise ServiceError(f"a matcher URL starts with http:// or https://, got {url[:80]!r}")
        self.url = url.rstrip("/")
        #: Bytes of request bodies sent and of answers received (what the wire carried, framing included).
        self.sent = self.received = 0
        ca_file = ca_file or os.environ.get(CA_ENV)
        verify: ssl.SSLContext | bool = ssl.create_default_context(cafile=ca_file) if ca_file else True
        self._http = httpx.Client(
            base_url=self.url,
            headers={"Authorization": f"Bearer {token}"},
            timeout=httpx.Timeout(timeout, connect=10.0),
            verify=verify,
        )

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> RemoteMatcher:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---------------------------------------------------------------- transport
    def _retried(self, call: Callable[[], T], retry: bool = True) -> T:
        """``call`` again after a transport failure (up to ``ATTEMPTS`` times with ``retry``), then a
        ``ServiceError``; answers, errors included, are the caller's."""
        attempts = ATTEMPTS if retry else 1
        for attempt in range(attempts):
            try:
                return call()
            except httpx.TransportError as exc:
                if attempt == attempts - 1:
                    raise ServiceError(f"cannot reach the matcher at {self.url}: {exc}") from None
                time.sleep(0.5 * (attempt + 1))
        raise AssertionError("unreachable")

    def request(
        self, method: str, path: str, *, retry: bool = True, parts: Sequence[bytes] | None = None, **kwargs: Any
    ) -> httpx.Response:
        """One request (``parts``: a framed body, streamed); transport failures are retried
        (``retry``) and then a ``ServiceError``; an error answer is raised as the CipherfaceError
        it names."""

        def once() -> httpx.Response:
            if parts is not None:
                kwargs["content"] = frames.encode(parts)
            response = self._http.request(method, path, **kwargs)
            self.sent += sum(len(p) + 8 for p in parts) if parts is not None else _body_size(response.request)
            self.received += len(response.content)
            return response

        response = self._retried(once, retry)
        if response.status_code >= 400:
            raise _error(response)
        return response

    def framed(self, method: str, path: str, parts: Iterable[bytes] | None = None, **kwargs: Any) -> list[bytes]:
        """A request whose answer is frames, read frame by frame."""
        content = None if parts is None else list(parts)

        def once() -> list[bytes]:
            body = None if content is None else frames.encode(content)
            with self._http.stream(method, path, content=body, **kwargs) as response:
                self.sent += sum(len(p) + 8 for p in content) if content is not None else 0
                if response.status_code >= 400:
                    response.read()
                    raise _error(response)
                out = list(frames.read(response.iter_bytes(), MAX_FRAME))
                self.received += sum(len(p) + 8 for p in out)
                return out

        return self._retried(once)

    # ---------------------------------------------------------------- galleries
    def health(self) -> dict[str, Any]:
        return self.request("GET", "/health").json()

    def exists(self, name: str) -> bool:
        try:
            self.request("GET", f"/v1/galleries/{name}")
            return True
        except NotFoundError:
            return False

    def create(self, name: str, public_bundle: bytes, meta: dict[str, Any]) -> RemoteGallery:
        self.request("PUT", f"/v1/galleries/{name}", retry=False, parts=[frames.header(meta), public_bundle])
        return self.open(name)

    def open(self, name: str) -> RemoteGallery:
        return RemoteGallery(self, name)

    def label(self, name: str) -> str:
        return f"{self.url}/v1/galleries/{name}"

    def galleries(self) -> list[str]:
        return self.request("GET", "/v1/galleries").json()["galleries"]

    def delete(self, name: str) -> None:
        self.request("DELETE", f"/v1/galleries/{name}")

    # ---------------------------------------------------------------------- 1:1
    def distance(self, key_id: str, a: bytes, b: bytes) -> bytes:
        return self.request("POST", f"/v1/keys/{key_id}/distance", parts=[a, b]).content

    def upload_key(self, public_bundle: bytes) -> str:
        """Make sure the service holds this public bundle (uploaded once per key)."""
        env = envelope.decode(public_bundle)
        if env.kind != envelope.PUBLIC_BUNDLE:
            raise errors.WrongKindError("only a public bundle ever goes to the matcher")
        try:
            self.request("GET", f"/v1/keys/{env.key_id}")
        except NotFoundError:
            self.request("PUT", f"/v1/keys/{env.key_id}", content=public_bundle)
        return env.key_id

    def for_key(self, public_bundle: bytes) -> RemoteOneToOne:
        return RemoteOneToOne(self, public_bundle)


class RemoteOneToOne:
    """What ``verification.verify`` needs of a matcher (``distance(a, b)``), over the wire. Public
    bundles are kept per service node: a node that lacks it (another node behind a load balancer,
    or a node restored from backup) is sent it again once."""

    def __init__(self, remote: RemoteMatcher, public_bundle: bytes) -> None:
        self.remote, self.public_bundle = remote, public_bundle
        self.key_id = remote.upload_key(public_bundle)

    def distance(self, a: bytes, b: bytes) -> bytes:
        try:
            return self.remote.distance(self.key_id, a, b)
        except NotFoundError:
            self.remote.upload_key(self.public_bundle)
            return self.remote.distance(self.key_id, a, b)


class RemoteGallery:
    """A gallery of a matcher service, with the interface of ``EncryptedGallery`` the key owner's
    ``Identifier`` uses. Its settings are read once (and checked by the key owner's manifest MAC)."""

    def __init__(self, remote: RemoteMatcher, name: str) -> None:
        self.remote = remote
        self.name = name
        self._path = f"/v1/galleries/{name}"
        self._meta: dict[str, Any] = remote.request("GET", self._path).json()["meta"]
        try:
            self.metric: str = self._meta["metric"]
            self.dim: int = int(self._meta["dim"])
            self.width: int = int(self._meta["width"])
            self.gallery_id: str = self._meta["gallery_id"]
            self.canaries: int = int(self._meta["canaries"])
            self.slot_count: int = int(self._meta["slot_count"])
        except (KeyError, TypeError, ValueError) as exc:
            raise IntegrityError(f"gallery {self.label}: its settings are malformed ({exc})") from None
        self._bundle: bytes | None = None
        self._state: GalleryState | None = None

    @property
    def label(self) -> str:
        return self.remote.label(self.name)

    @property
    def key_id(self) -> str:
        return str(self._meta.get("key_id"))

    @property
    def capacity(self) -> int:
        return self.slot_count - self.canaries

    def meta(self) -> dict[str, Any]:
        return dict(self._meta)

    def public_bundle(self) -> bytes:
        if self._bundle is None:
            self._bundle = self.remote.request("GET", f"{self._path}/bundle").content
        return self._bundle

    def info(self) -> dict[str, Any]:
        return {**self.remote.request("GET", self._path).json()["info"], "path": self.label}

    def count(self) -> int:
        return int(self.info()["identities"])

    def _since(self) -> dict[str, int]:
        return {} if self._state is None else {"since": self._state.generation}

    def _read_state(self, body: dict[str, Any]) -> GalleryState:
        """The state an answer carries (or the cached one, when it says it is unchanged)."""
        try:
            cached = self._state
            if body.get("unchanged") and cached is not None and body["generation"] == cached.generation:
                return cached
            slots: dict[int, dict[int, str]] = {}
            seals: dict[int, str] = {}
            if "since" in body:  # only the blocks rewritten since the generation held here
                if cached is None or body["since"] != cached.generation:
                    raise ValueError("a change list against a generation this client does not hold")
                blocks = {int(b) for b in body["blocks"]}
                slots = {b: rows for b, rows in cached.slots.items() if b not in blocks}  # never mutated
                seals = {b: seal for b, seal in cached.seals.items() if b not in blocks}
            for ident, block, slot in body["slots"]:
                if "since" in body and int(block) not in blocks:
                    raise ValueError(f"a slot row of block {block}, which the change list does not name")
                slots.setdefault(int(block), {})[int(slot)] = str(ident)
            seals.update({int(b): str(s) for b, s in body["seals"].items()})
            self._state = GalleryState(int(body["generation"]), slots, seals)
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise IntegrityError(f"gallery {self.label}: the matcher's state is malformed ({exc})") from None
        return self._state

    def state(self) -> GalleryState:
        return self._read_state(self.remote.request("GET", f"{self._path}/state", params=self._since()).json())

    def seal_of(self, block: int) -> str | None:
        return self.state().seals.get(block)  # the current state: asked after a commit whose answer was lost

    def locate(self, ids: Sequence[str]) -> list[tuple[str, int, int]]:
        rows = self.remote.request("POST", f"{self._path}/locate", json=list(ids)).json()["rows"]
        return [(str(i), int(b), int(s)) for i, b, s in rows]

    def read_blocks(self, blocks: Sequence[int]) -> dict[int, StoredBlock]:
        parts = self.remote.framed("POST", f"{self._path}/blocks", json=[int(b) for b in blocks])
        head, blobs = frames.read_header(parts[0]) if parts else {}, parts[1:]
        out, at = {}, 0
        try:
            for entry in head["blocks"]:
                n = int(entry["count"])
                slots = {int(s): str(i) for s, i in entry["slots"]}
                out[int(entry["block"])] = StoredBlock(blobs[at : at + n], str(entry["seal"]), slots)
                at += n
        except (KeyError, TypeError, ValueError) as exc:
            raise IntegrityError(f"gallery {self.label}: the matcher's blocks are malformed ({exc})") from None
        return out

    def commit(
        self, writes: dict[int, BlockWrite], add: Sequence[tuple[str, int, int]] = (), remove: Sequence[str] = ()
    ) -> None:
        head = {
            "request": secrets.token_hex(16),  # the same on every retry: committed at most once
            "writes": [
                {"block": b, "seal": w.seal, "read_seal": w.read_seal, "count": len(w.blobs)} for b, w in writes.items()
            ],
            "add": [list(row) for row in add],
            "remove": list(remove),
        }
        blobs = [blob for w in writes.values() for blob in w.blobs]
        self.remote.request("POST", f"{self._path}/commit", parts=[frames.header(head), *blobs])

    def scan_with_state(self, probe: Sequence[bytes], workers: int = 1) -> tuple[list[bytes], GalleryState]:
        """Scores and the state of the generation they were computed on, in one round trip (the
        service scans on its own ``--scan-workers``)."""
        parts = self.remote.framed("POST", f"{self._path}/scan", list(probe), params=self._since())
        if not parts:
            raise IntegrityError(f"gallery {self.label}: the scan answered nothing")
        return parts[1:], self._read_state(frames.read_header(parts[0]))

    def checkpoint(self) -> None:
        """Nothing to do: the service folds its own write-ahead log."""

    def close(self) -> None:
        """The connection belongs to the RemoteMatcher."""
