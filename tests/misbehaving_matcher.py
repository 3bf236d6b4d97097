"""A matcher service that misbehaves on purpose, for the client's integrity tests: the real app,
with its scan answers changed as a dishonest cloud could (``MODE``: ``drop`` the last score block,
``forge`` one from the public key, ``duplicate`` one). Run: python misbehaving_matcher.py DATA PORT MODE."""

import sys

import numpy as np
import uvicorn

from cipherface import envelope
from cipherface.backend import open_bundle
from cipherface.service import frames
from cipherface.service.app import create_app


def misbehave(mode: str, parts: list[bytes]) -> list[bytes]:
    head, results = parts[0], parts[1:]
    if mode == "drop":
        results = results[:-1]
    elif mode == "duplicate":
        results = results + results[:1]
    elif mode == "forge":  # what any holder of the public bundle can make: scores of its own choosing
        env = envelope.decode(results[0])
        backend = open_bundle(FORGER_BUNDLE[0], envelope.PUBLIC_BUNDLE)
        ct = backend.encrypt(np.full(backend.slot_count, 0.01), depth=0)
        meta = {k: v for k, v in env.meta.items() if k != "level"}  # the level field is the envelope's own
        results = [backend.dump_ciphertext(ct, kind=envelope.RESULT, meta=meta), *results[1:]]
    return [head, *results]


FORGER_BUNDLE: list[bytes] = []


def app(data: str, mode: str):
    inner = create_app(data)

    async def wrapped(scope, receive, send):
        if scope["type"] != "http" or not scope["path"].endswith("/scan"):
            await inner(scope, receive, send)
            return
        start, chunks = {}, []

        async def capture(message):
            if message["type"] == "http.response.start":
                start.update(message)
            elif message["type"] == "http.response.body":
                chunks.append(message.get("body", b""))

        await inner(scope, receive, capture)
        body = b"".join(chunks)
        if start.get("status") == 200:
            name = scope["path"].split("/")[3]
            tenant = sorted((inner.state.root / "tenants").iterdir())[0]
            gallery = tenant / "galleries" / f"{name}.db"
            import sqlite3

            FORGER_BUNDLE[:] = [sqlite3.connect(gallery).execute("SELECT data FROM bundle").fetchone()[0]]
            body = b"".join(frames.encode(misbehave(mode, frames.decode(body))))
        headers = [(k, v) for k, v in start.get("headers", []) if k.lower() != b"content-length"]
        headers.append((b"content-length", str(len(body)).encode()))
        await send({"type": "http.response.start", "status": start.get("status", 500), "headers": headers})
        await send({"type": "http.response.body", "body": body})

    return wrapped


if __name__ == "__main__":
    data, port, mode = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    uvicorn.run(app(data, mode), host="127.0.0.1", port=port, log_level="warning")
