import pytest

from cipherface.backend import FHEBackend
from cipherface.errors import UnknownPluginError
from cipherface.plugins import distributions, get_backend, get_embedder, get_protocol, registry


def test_backends_are_discovered_through_entry_points():
    loaded = distributions()
    assert loaded["cipherface_tenseal"].startswith("cipherface-tenseal ")
    assert loaded["cipherface_pyfhel"].startswith("cipherface-pyfhel ")
    assert {"tenseal", "pyfhel", "tenseal-bfv", "pyfhel-bfv", "seal"} <= set(registry().backends)


def test_builtin_protocols_register_through_the_same_hooks():
    assert {"euclidean", "cosine"} <= set(registry().protocols)
    assert get_protocol("cosine").name == "cosine"


def test_unknown_backend_lists_installed_ones():
    with pytest.raises(UnknownPluginError, match=r"unknown backend 'seal9'; installed backends: .*pyfhel.*tenseal"):
        get_backend("seal9")


def test_unknown_protocol_and_embedder_are_clear_errors():
    with pytest.raises(UnknownPluginError, match="installed protocols: cosine, euclidean"):
        get_protocol("manhattan")
    with pytest.raises(UnknownPluginError, match="unknown embedder"):
        get_embedder("nope")


def test_env_var_selects_the_backend(monkeypatch):
    monkeypatch.setenv("CIPHERFACE_BACKEND", "pyfhel")
    assert get_backend().name == "pyfhel"
    monkeypatch.delenv("CIPHERFACE_BACKEND")
    assert get_backend().name == "tenseal"


def test_a_process_loads_only_the_fhe_library_it_uses(tmp_path):
    """TenSEAL and Pyfhel each carry a copy of Microsoft SEAL, and two copies in one process share
    SEAL's GNU-unique globals (its memory-manager profile): a command loads only its backend's."""
    import subprocess
    import sys

    script = (
        "import sys, numpy as np\n"
        "from cipherface.plugins import registry\n"
        "from cipherface import KeyOwner, Matcher\n"
        "registry()\n"
        "assert not {'tenseal', 'Pyfhel'} & set(sys.modules), 'registering loaded a library'\n"
        "o = KeyOwner.generate('tenseal', rotation_steps=[1, 2, 4])\n"
        "Matcher(o.public_bundle()).distance(o.encrypt(np.ones(8), 'cosine'), o.encrypt(np.ones(8), 'cosine'))\n"
        "assert 'tenseal' in sys.modules and 'Pyfhel' not in sys.modules\n"
    )
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


def run_python(code, **env):
    import os
    import subprocess
    import sys

    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env={**os.environ, **env})


def test_two_plugins_registering_one_name_is_its_own_clear_error():
    proc = run_python(
        """
import types
from cipherface import hookimpl
from cipherface.plugins import plugin_manager, registry
from cipherface.errors import DuplicatePluginError
from cipherface_tenseal import TenSEALBackend
class Copy(TenSEALBackend):
    pass
mod = types.ModuleType("cipherface_impostor")
mod.register_backends = hookimpl(lambda register: register(Copy))
Copy.__module__ = "cipherface_impostor"
plugin_manager().register(mod)
try:
    registry()
except DuplicatePluginError as exc:
    print(exc)
"""
    )
    assert "two plugins register a backend named 'tenseal'" in proc.stdout, proc.stderr
    assert "cipherface_impostor and cipherface_tenseal" in proc.stdout  # pluggy calls the newest first


def test_cipherface_load_plugins_picks_which_installed_plugins_load():
    code = "from cipherface.plugins import registry; print(sorted(registry().backends))"
    assert run_python(code, CIPHERFACE_LOAD_PLUGINS="cipherface-seal").stdout.strip() == "['seal']"
    assert run_python(code, CIPHERFACE_LOAD_PLUGINS="cipherface-pyfhel, cipherface-tenseal").stdout.strip() == (
        "['pyfhel', 'pyfhel-bfv', 'tenseal', 'tenseal-bfv']"
    )
    assert run_python(code, CIPHERFACE_LOAD_PLUGINS="").stdout.strip() == "[]"
    protocols = "from cipherface.plugins import registry; print(sorted(registry().protocols))"
    assert run_python(protocols, CIPHERFACE_LOAD_PLUGINS="").stdout.strip() == "['cosine', 'euclidean']"  # built in


def test_a_plugin_adds_its_own_cli_command():
    import subprocess
    import sys

    out = subprocess.run(
        [sys.executable, "-m", "cipherface", "opcount", "--dim", "16"], capture_output=True, text=True, check=True
    )
    assert "rotate" in out.stdout and "multiply" in out.stdout


def test_backends_show_scheme_and_capabilities():
    import json
    import subprocess
    import sys

    out = subprocess.run(
        [sys.executable, "-m", "cipherface", "backends", "--json"], capture_output=True, text=True, check=True
    )
    data = json.loads(out.stdout)
    seal = next(b for b in data["backends"] if b["name"] == "seal")
    assert seal["scheme"] == "ckks" and {"ct-multiply", "rotation", "approximate"} <= set(seal["capabilities"])
    assert "rotation" in next(p for p in data["protocols"] if p["name"] == "cosine")["requires"]


def test_a_protocol_needing_a_missing_capability_is_refused_naming_it(tmp_path):
    import numpy as np

    from cipherface import KeyOwner
    from cipherface.errors import MissingCapabilityError

    base = get_backend("tenseal")

    class NoRotation(base):
        name = "tenseal"
        capabilities = base.capabilities - {"rotation"}

    owner = KeyOwner(NoRotation.generate("n8192-s128", rotation_steps=[]))
    with pytest.raises(MissingCapabilityError, match="the 'cosine' protocol needs rotation, which backend"):
        owner.encrypt(np.ones(8), "cosine")
    # the packed gallery needs no rotation: it still runs on this backend
    from cipherface.gallery import EncryptedGallery

    bundle = owner.public_bundle()
    meta = EncryptedGallery.new_meta(bundle, "cosine", 8, canaries=8, sign=lambda meta, bundle: "x")
    gallery = EncryptedGallery.create(tmp_path / "g.db", bundle, meta)
    gallery.close()


def test_a_backend_without_the_arithmetic_a_protocol_needs_is_refused_naming_it():
    from cipherface.capabilities import protocol_for
    from cipherface.errors import MissingCapabilityError

    base = get_backend("pyfhel")

    class NoArithmetic(base):
        name = "pyfhel"
        capabilities = base.capabilities - {"approximate"}

    with pytest.raises(MissingCapabilityError, match="needs approximate, which backend 'pyfhel' does not provide"):
        protocol_for(NoArithmetic, "euclidean")
    # an exact backend gets the quantised protocol, which needs exact instead
    assert "exact" in protocol_for(get_backend("pyfhel-bfv"), "euclidean").requires


def test_public_operations_are_final_plugins_implement_hooks():
    from cipherface.backend import FINAL_METHODS

    base = get_backend("tenseal")
    assert {"add", "multiply", "encrypt", "decrypt", "rotate", "load_ciphertext"} <= FINAL_METHODS
    with pytest.raises(TypeError, match="overrides add, relinearize: the public operations are final"):

        class Overriding(base):
            def add(self, a, b):
                return a

            def relinearize(self, a):
                return a

    for cls in registry().backends.values():
        assert not FINAL_METHODS & {n for c in cls.__mro__[: cls.__mro__.index(FHEBackend)] for n in vars(c)}


def test_the_core_never_branches_on_a_backend_or_scheme_name():
    """Backends and schemes plug in by name and capability: nothing in the core, the protocols
    or the gallery compares with a concrete backend or scheme, or imports an FHE library."""
    import re
    from pathlib import Path

    import cipherface

    names = r"['\"](?:tenseal|pyfhel|seal|opcount|ckks|bfv|bgv)(?:-bfv)?['\"]"
    forbidden = [
        re.compile(rf"(?:==|!=|\bin\b|\bis\b)\s*[\(\[{{]?\s*{names}", re.I),
        re.compile(rf"{names}\s*(?:==|!=|\bin\b)", re.I),
        re.compile(r"^\s*(?:import|from)\s+(?:tenseal|Pyfhel|seal)\b", re.M),
    ]
    root = Path(cipherface.__file__).parent
    hits = [
        f"{path.relative_to(root)}: {match.group(0)}"
        for path in root.rglob("*.py")
        for pattern in forbidden
        for match in pattern.finditer(path.read_text())
    ]
    assert not hits, hits
