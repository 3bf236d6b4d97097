"""An example third-party backend, written against cipherface's public interfaces only.

``opcount`` wraps whichever backend is installed under the name in
``$CIPHERFACE_OPCOUNT_INNER`` (default ``tenseal``) and counts every
homomorphic operation, so a user can see what a workload costs
(``backend.counts["rotate"]`` after a query).  Its blobs carry its own name
in the envelope, with the inner backend's envelope as their payload.
"""

from __future__ import annotations

import os
import threading
from collections import Counter

from cipherface import FHEBackend, hookimpl
from cipherface.errors import EnvelopeError
from cipherface.plugins import get_backend

INNER_ENV = "CIPHERFACE_OPCOUNT_INNER"


class OpCountBackend(FHEBackend):
    name = "opcount"
    thread_safe = False  # the inner backend may not be; declare only what is guaranteed
    public_parts = ("inner",)  # the inner backend's own bundle, public or secret as the outer one
    secret_parts = ()

    def __init__(self, params, key_id, rotation_steps, inner: FHEBackend) -> None:
        super().__init__(params, key_id, rotation_steps)
        self.inner = inner
        self.counts: Counter[str] = Counter()
        self._lock = threading.Lock()

    @classmethod
    def inner_class(cls) -> type[FHEBackend]:
        return get_backend(os.environ.get(INNER_ENV, "tenseal"))

    @classmethod
    def library_version(cls) -> str:
        inner = cls.inner_class()
        return f"{inner.name} {inner.library_version()}"

    def _count(self, op: str) -> None:
        with self._lock:
            self.counts[op] += 1

    @classmethod
    def _generate(cls, params, key_id, rotation_steps):
        return cls(params, key_id, rotation_steps, cls.inner_class().generate(params, rotation_steps=rotation_steps))

    @classmethod
    def _from_parts(cls, params, key_id, rotation_steps, parts, secret):
        inner = cls.inner_class().load_bundle(parts["inner"])
        if inner.has_secret_key != secret:
            raise EnvelopeError("opcount bundle: the inner bundle's kind does not match the outer one")
        return cls(params, key_id, rotation_steps, inner)

    def _bundle_parts(self, secret):
        inner = self.inner.export_secret_bundle() if secret else self.inner.export_public_bundle()
        return {"inner": inner}

    @property
    def has_secret_key(self):
        return self.inner.has_secret_key

    def depth_left(self, ct):
        return self.inner.depth_left(ct)

    def _encrypt(self, values, depth):
        self._count("encrypt")
        return self.inner.encrypt(values, depth=depth)

    def _decrypt(self, ct):
        self._count("decrypt")
        return self.inner.decrypt(ct)

    def _add(self, a, b):
        self._count("add")
        return self.inner.add(a, b)

    def _sub(self, a, b):
        self._count("sub")
        return self.inner.sub(a, b)

    def _negate(self, a):
        self._count("negate")
        return self.inner.negate(a)

    def _add_plain(self, a, plain):
        self._count("add_plain")
        return self.inner.add_plain(a, plain)

    def _multiply(self, a, b, relinearize, rescale):
        self._count("multiply")
        return self.inner.multiply(a, b, relinearize=relinearize, rescale=rescale)

    def _multiply_plain(self, a, plain, rescale):
        self._count("multiply_plain")
        return (
            self.inner.multiply_plain(a, plain, rescale=rescale)
            if not isinstance(plain, float)
            else (self.inner.multiply_scalar(a, plain, rescale=rescale))
        )

    def _relinearize(self, a):
        self._count("relinearize")
        return self.inner.relinearize(a)

    def _rescale(self, a):
        self._count("rescale")
        return self.inner.rescale(a)

    def _drop_level(self, a, levels):
        self._count("drop_level")
        return self.inner.drop_level(a, levels)

    def _scale(self, ct):
        return self.inner._scale(ct)

    def _rotate(self, a, step):
        self._count("rotate")
        return self.inner.rotate(a, step)

    def _serialize(self, ct):
        return self.inner.dump_ciphertext(ct)

    def _deserialize(self, data, depth):
        return self.inner.load_ciphertext(data)[0]


@hookimpl
def register_backends(register):
    register(OpCountBackend)


@hookimpl
def register_commands(cli):
    import click

    @cli.command(name="opcount")
    @click.option("--metric", default="cosine", show_default=True)
    @click.option("--dim", type=int, default=128, show_default=True)
    def opcount(metric: str, dim: int) -> None:
        """Homomorphic operations one encrypted 1:1 comparison costs (example plugin command)."""
        import numpy as np

        from cipherface import KeyOwner, Matcher
        from cipherface.backend import power_of_two_steps

        owner = KeyOwner.generate("opcount", rotation_steps=power_of_two_steps(dim))
        matcher = Matcher(owner.public_bundle())
        rng = np.random.default_rng(0)
        blobs = [owner.encrypt(rng.normal(size=dim), metric) for _ in range(2)]
        matcher.backend.counts.clear()
        matcher.distance(*blobs)
        for op, n in sorted(matcher.backend.counts.items()):
            click.echo(f"{op:<16} {n}")
