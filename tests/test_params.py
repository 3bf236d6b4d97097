import pytest

from cipherface.errors import ParameterError
from cipherface.params import (
    DEFAULT_PRESET_FOR_LEVEL,
    HE_STANDARD_MAX_LOG_Q,
    PRESETS,
    CKKSParams,
    resolve_params,
)


@pytest.mark.parametrize("name", list(PRESETS))
def test_every_preset_meets_its_claimed_level(name):
    p = PRESETS[name]
    assert p.total_bits <= HE_STANDARD_MAX_LOG_Q[p.poly_modulus_degree][p.security_level]
    assert p.problems() == []


def test_reference_192_bit_claim_is_refused_with_the_numbers():
    with pytest.raises(ParameterError, match=r"160 exceeds 152"):
        CKKSParams(8192, (60, 40, 60), 40, 192).check()


def test_reference_256_bit_claim_is_refused():
    with pytest.raises(ParameterError, match=r"120 exceeds 118"):
        CKKSParams(8192, (30, 30, 30, 30), 25, 256).check()


def test_same_set_at_128_bit_is_accepted():
    assert CKKSParams(8192, (60, 40, 60), 40, 128).check().depth == 1


@pytest.mark.parametrize(
    ("params", "message"),
    [
        (CKKSParams(8000, (60, 40, 60), 40, 128), "not in the HE standard table"),
        (CKKSParams(8192, (60, 40, 60), 40, 100), "security level 100"),
        (CKKSParams(8192, (60,), 40, 128), "at least two primes"),
        (CKKSParams(8192, (70, 40, 60), 40, 128), "20 to 60 bits"),
        (CKKSParams(8192, (40, 40, 60), 40, 128), "leaves 0 bits above the scale"),
    ],
)
def test_malformed_sets_are_refused_with_the_reason(params, message):
    with pytest.raises(ParameterError, match=message):
        params.check()


def test_security_level_picks_the_default_preset():
    for level, name in DEFAULT_PRESET_FOR_LEVEL.items():
        assert resolve_params(level) == PRESETS[name]
        assert resolve_params(str(level)).security_level == level


def test_unknown_preset_lists_the_presets():
    with pytest.raises(ParameterError, match="n8192-s128"):
        resolve_params("n1-s1")


def test_fingerprint_changes_with_any_field():
    base = PRESETS["n8192-s128"]
    other = CKKSParams(8192, (60, 40, 40, 60), 39, 128)
    assert base.fingerprint != other.fingerprint
    assert CKKSParams.from_dict(base.to_dict()) == base


@pytest.mark.parametrize(
    ("params", "message"),
    [
        (CKKSParams(8192, (60, 40, 40), 40, 192), r"special \(last\) prime has 40 bits, fewer than the 60-bit prime"),
        (CKKSParams(8192, (60, 35, 60), 40, 128), r"must equal the scale 2\^40, got \[35\]"),
        (CKKSParams(8192, (45, 40, 60), 40, 128), "leaves 5 bits above the scale"),
        (CKKSParams(8192, (60, 60), 40, 128), "depth 0"),
    ],
)
def test_secure_but_miscomputing_chains_are_refused_with_the_numbers(params, message):
    """Each of these meets the security table; each would return wrong answers."""
    assert params.total_bits <= params.max_log_q
    with pytest.raises(ParameterError, match=message):
        params.check()


def test_the_192_bit_preset_has_a_special_prime_as_large_as_its_first():
    p = PRESETS["n8192-s192"]
    assert p.coeff_mod_bit_sizes == (56, 40, 56) and p.total_bits == 152 and p.problems() == []
    assert p.result_limit == 2.0**14


def test_a_parameter_set_reads_from_its_command_line_form():
    assert CKKSParams.parse("8192:60,40,40,60:40:128") == PRESETS["n8192-s128"]
    with pytest.raises(ParameterError, match="N:BITS"):
        CKKSParams.parse("8192-60")


def test_bfv_parameter_sets_have_their_own_rules():
    from cipherface.params import BFV_PRESETS, BFVParams, resolve_params

    for name, p in BFV_PRESETS.items():
        assert p.problems() == [], name
        assert p.total_bits <= p.max_log_q
    assert resolve_params(None, "bfv") is BFV_PRESETS["bfv-n8192-s128"]
    assert resolve_params(192, "bfv") is BFV_PRESETS["bfv-n8192-s192"]
    assert any("exceeds 218" in m for m in BFVParams(8192, (60, 60, 60, 60), 20, 128).problems())
    assert any(
        "plain_modulus_bits must be 17 to 30" in m for m in BFVParams(8192, (43, 43, 44, 44, 44), 40, 128).problems()
    )
    assert any("noise budget of 6 bits" in m for m in BFVParams(8192, (30, 30, 30), 20, 128).problems())
    with pytest.raises(ParameterError, match="not a bfv parameter set"):
        resolve_params(PRESETS["n8192-s128"], "bfv")
    with pytest.raises(ParameterError, match="unknown bfv parameter preset 'n8192-s128'"):
        resolve_params("n8192-s128", "bfv")


def test_params_cli_takes_a_scheme():
    import json
    import subprocess
    import sys

    def cli(*args):
        return subprocess.run([sys.executable, "-m", "cipherface", "params", *args], capture_output=True, text=True)

    listed = json.loads(cli("list", "--scheme", "bfv", "--json").stdout)
    assert [r["name"] for r in listed] == ["bfv-n8192-s128", "bfv-n8192-s192", "bfv-n16384-s256"]
    assert all(r["scheme"] == "bfv" and "plain_modulus_bits" in r for r in listed)
    ok = cli("check", "--scheme", "bfv", "-n", "8192", "-q", "43,43,44,44,44", "--security", "128")
    assert ok.returncode == 0 and "OK" in ok.stdout
    bad = cli("check", "--scheme", "bfv", "-n", "8192", "-q", "30,30,30", "--security", "128")
    assert bad.returncode == 1 and "noise budget" in bad.stderr
    wrong = cli(
        "check", "--scheme", "bfv", "-n", "8192", "-q", "43,43,44,44,44", "--security", "128", "--scale-bits", "40"
    )
    assert wrong.returncode == 2 and "--scale-bits is not a bfv setting" in wrong.stderr
