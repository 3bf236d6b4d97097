"""The matcher as a service: the FastAPI app (``app.py``, run by ``cipherface serve``), its
tokens (``tokens.py``), the framing of binary bodies (``frames.py``) and the key owner's client
(``remote.py``). Needs the ``service`` extra (fastapi, uvicorn, httpx)."""

from cipherface.service.remote import RemoteGallery, RemoteMatcher

__all__ = ["RemoteGallery", "RemoteMatcher"]
