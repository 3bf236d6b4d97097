"""CKKS vs BFV, backend by backend, in one run: accuracy on the 520 shared pairs, 1:1 latency and
sizes, 1:N comparisons per second of the packed gallery's kernel; beside the reference design.

Every backend runs its scheme's default 128-bit preset (CKKS n8192-s128 [60,40,40,60] 2^40,
BFV bfv-n8192-s128 [43,43,44,44,44] t of 20 bits). BFV rows compute on embeddings quantised to
8 bits (docs/schemes.md); their accuracy is reported against the float plaintext model as well.

    python bench/bench_schemes.py [--repeat 10] [--no-write]

Writes the ``schemes`` section of docs/schemes.md.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import tenseal as ts
from report import machine, median_ms, shared_embeddings, table, write_section

from cipherface import KeyOwner, Matcher, envelope
from cipherface.backend import power_of_two_steps
from cipherface.capabilities import PROBE_IN_CLEAR, protocol_for
from cipherface.evaluation import evaluate_metric
from cipherface.gallery import layout as layouts
from cipherface.gallery.packing import encrypt_block, encrypt_probe
from cipherface.plugins import get_backend

BACKENDS = ("tenseal", "pyfhel", "seal", "tenseal-bfv", "pyfhel-bfv", "paillier", "dcpe")
#: Identities scored per block on a probe-in-clear backend: its cost is per identity, not per block.
CLEAR_PROBE_BLOCK = 128
THRESHOLDS = {"cosine": 0.07, "euclidean": 0.6}  # DeepFace's Dlib thresholds
DOC = Path(__file__).resolve().parents[1] / "docs" / "schemes.md"
D = 128


def accuracy(name: str, embeddings, pairs) -> dict[str, dict]:
    owner = KeyOwner.generate(name)
    matcher = Matcher(owner.public_bundle())
    return {m: evaluate_metric(owner, matcher, embeddings, pairs, m, t, progress=False) for m, t in THRESHOLDS.items()}


def one_to_one(name: str, repeat: int, rng) -> dict[str, float]:
    cls = get_backend(name)
    backend = cls.generate(None, rotation_steps=power_of_two_steps(D))
    cos = protocol_for(backend, "cosine")
    va, vb = rng.normal(size=(2, D))
    a, b = cos.prepare(va), cos.prepare_probe(vb)  # the probe goes in the clear on a probe-in-clear backend
    ca, cb = backend.encrypt(a), backend.encrypt_probe(b)
    result = cos.encrypted(backend, ca, cb, a.size)
    return {
        # preparing included: on a distance-preserving backend it is the transform (the encryption proper)
        "encrypt_ms": median_ms(lambda: backend.encrypt(cos.prepare(va)), repeat),
        "cosine_ms": median_ms(lambda: cos.encrypted(backend, ca, cb, a.size), repeat),
        "decrypt_ms": median_ms(lambda: backend.decrypt(result, 1), repeat),
        "upload_kb": len(backend.encrypt_blob(a)) / 1e3,
        "result_kb": len(backend.dump_ciphertext(result)) / 1e3,
        "public_mb": len(backend.export_public_bundle()) / 1e6,
    }


def one_to_n(name: str, repeat: int, rng) -> dict[str, float]:
    """One full block (slot_count identities, d=128) scored against one probe: the scan's kernel."""
    owner = get_backend(name).generate(None, rotation_steps=[])
    matcher = owner.public_copy()
    p = protocol_for(owner, "cosine", gallery=True)
    count = CLEAR_PROBE_BLOCK if PROBE_IN_CLEAR in owner.capabilities else owner.slot_count
    rows = np.zeros((owner.slot_count, D))
    rows[:count] = [p.gallery_row(v) for v in rng.normal(size=(count, D))]
    blobs = encrypt_block(owner, rows.T, 0, layouts.TWO_PRIMES)  # every backend stores it
    block = [matcher.load_ciphertext(x, kind=envelope.GALLERY_BLOCK)[0] for x in blobs]
    probe_blobs, _, _ = encrypt_probe(owner, p, rng.normal(size=D))
    probe = [matcher.load_ciphertext(x, kind=envelope.GALLERY_BLOCK)[0] for x in probe_blobs]
    ms = median_ms(lambda: matcher.inner_product(block, probe), max(2, repeat // 3))
    return {
        "block_ms": ms,
        "per_second": count / ms * 1000,
        "kb_per_identity": sum(map(len, blobs)) / count / 1e3,
        "probe_mb": sum(map(len, probe_blobs)) / 1e6,
    }


def reference(repeat: int, rng) -> dict[str, float]:
    ctx = ts.context(ts.SCHEME_TYPE.CKKS, 8192, coeff_mod_bit_sizes=[60, 40, 40, 60])
    ctx.global_scale = 2**40
    ctx.generate_galois_keys()
    a, b = rng.normal(size=(2, D))
    a, b = a / np.linalg.norm(a), b / np.linalg.norm(b)
    ea, eb = ts.ckks_vector(ctx, a), ts.ckks_vector(ctx, b)
    dot = median_ms(lambda: ea.dot(eb), repeat)
    return {
        "encrypt_ms": median_ms(lambda: ts.ckks_vector(ctx, a), repeat),
        "cosine_ms": dot,
        "decrypt_ms": median_ms(lambda: ea.decrypt(), repeat),
        "upload_kb": len(ea.serialize()) / 1e3,
        "per_second": 1000 / dot,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=10)
    parser.add_argument("--backends", default=",".join(BACKENDS))
    parser.add_argument("--no-write", action="store_true", help="print only; leave docs/schemes.md alone")
    args = parser.parse_args()
    backends = args.backends.split(",")
    rng = np.random.default_rng(0)
    start = time.time()

    pairs, embeddings = shared_embeddings()

    acc_rows, speed_rows = [], []
    ref = reference(args.repeat, rng)
    speed_rows.append(
        ["reference (TenSEAL ckks_vector)", "CKKS", f"{ref['encrypt_ms']:.2f}", f"{ref['cosine_ms']:.2f}",
         f"{ref['decrypt_ms']:.2f}", f"{ref['upload_kb']:.0f}", "-", "-", f"{ref['per_second']:.0f}", "-"]
    )  # fmt: skip
    for name in backends:
        scheme = get_backend(name).scheme.upper()
        acc = accuracy(name, embeddings, pairs)
        for metric, r in acc.items():
            float_acc = r.get("float_plaintext", r["plaintext"])["accuracy"]
            acc_rows.append(
                [
                    name,
                    scheme,
                    metric,
                    f"{float_acc:.4f}",
                    f"{r['plaintext']['accuracy']:.4f}" if "float_plaintext" in r else "(same)",
                    f"{r['encrypted']['accuracy']:.4f}",
                    f"{r['decision_agreement']:.4f}",
                    f"{r.get('float_decision_agreement', r['decision_agreement']):.4f}",
                    f"{r['max_abs_error']:.1e}",
                ]
            )
            print(" | ".join(acc_rows[-1]), flush=True)
        one, many = one_to_one(name, args.repeat, rng), one_to_n(name, args.repeat, rng)
        speed_rows.append(
            [name, scheme, f"{one['encrypt_ms']:.2f}", f"{one['cosine_ms']:.2f}", f"{one['decrypt_ms']:.2f}",
             f"{one['upload_kb']:.0f}", f"{one['result_kb']:.0f}", f"{one['public_mb']:.1f}",
             f"{many['per_second']:,.0f}", f"{many['kb_per_identity']:.1f}"]
        )  # fmt: skip
        print(" | ".join(speed_rows[-1]), flush=True)

    acc_md = table(
        [
            "backend",
            "scheme",
            "metric",
            "float plaintext acc.",
            "quantised plaintext acc.",
            "encrypted acc.",
            "agreement with scheme's plaintext",
            "agreement with float plaintext",
            "max abs error",
        ],
        acc_rows,
    )
    speed_md = table(
        [
            "implementation",
            "scheme",
            "encrypt ms",
            "enc. cosine ms",
            "decrypt ms",
            "upload KB",
            "result KB",
            "public bundle MB",
            "1:N comparisons/s (1 process)",
            "gallery KB/identity",
        ],
        speed_rows,
    )
    text = (
        f"Machine: {machine()}; {time.time() - start:.0f} s for the whole run (`bench/bench_schemes.py`).\n\n"
        f"### Accuracy on the {len(pairs)} shared pairs (DeepFace Dlib, thresholds cosine 0.07, Euclidean 0.6)\n\n"
        + acc_md
        + f"\n\n### Speed and size (d={D}, medians of {args.repeat} runs, one thread)\n\n"
        "1:1 = one encrypted cosine distance with rotations (Galois keys for d=128 only); upload = one embedding "
        "as the key owner sends it (seeded where the backend can); 1:N = one packed block (`slot_count` "
        "identities) scored against a probe with one multiply-accumulate, as the gallery scan does (Paillier: "
        f"{CLEAR_PROBE_BLOCK} identities, its cost being per identity; its probe goes in the clear).\n\n" + speed_md
    )
    if not args.no_write:
        write_section("schemes", text, DOC)
    print(text)


if __name__ == "__main__":
    main()
