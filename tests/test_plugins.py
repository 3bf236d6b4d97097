import pytest

from cipherface.errors import UnknownPluginError
from cipherface.plugins import get_backend, get_embedder, get_protocol, plugin_manager, registry


def test_backends_are_discovered_through_entry_points():
    names = {plugin.__name__ for plugin, _ in plugin_manager().list_plugin_distinfo()}
    assert {"cipherface_tenseal", "cipherface_pyfhel"} <= names
    assert {"tenseal", "pyfhel"} <= set(registry().backends)


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
