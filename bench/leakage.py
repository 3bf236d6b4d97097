"""What an honest-but-curious matcher learns, measured on every installed backend in one run
(``cipherface.audit``): the 520 shared pairs and their 68 photos (DeepFace Dlib, cosine).

    python bench/leakage.py [--backends tenseal,paillier] [--no-write]

Writes the ``leakage`` section of docs/schemes.md.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from report import machine, shared_embeddings, table, write_section

from cipherface.audit import run
from cipherface.plugins import registry

DOC = Path(__file__).resolve().parents[1] / "docs" / "schemes.md"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backends", default=None, help="default: every installed backend but the example")
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    names = args.backends.split(",") if args.backends else sorted(n for n in registry().backends if n != "opcount")
    start = time.time()
    pairs, embeddings = shared_embeddings()
    rows = []
    for name in names:
        r = run(name, embeddings, pairs)
        m, k, c = r.matcher, r.key_owner, r.cost
        sees = ", ".join(r.disclosures) or "ciphertexts only"
        rows.append(
            [name, r.scheme.upper(), sees,
             f"{m['pairs_auc']:.3f} / {m['pairs_best_accuracy']:.3f}",
             f"{m['linking_auc']:.3f} / {m['linking_best_accuracy']:.3f}",
             f"{m['ranking_top1']:.3f}",
             f"{k['pairs_auc']:.3f} / {k['pairs_accuracy']:.3f}",
             f"{k['linking_auc']:.3f}", f"{k['ranking_top1']:.3f}",
             f"{c['one_to_one_ms']:.0f}", f"{c['reference_kb']:.0f}", f"{c['probe_kb']:.0f}", f"{c['result_kb']:.0f}"]
        )  # fmt: skip
        print(" | ".join(rows[-1]), flush=True)
    chance = c["chance_ranking_top1"]
    text = (
        f"Machine: {machine()}; {time.time() - start:.0f} s for the whole run (`bench/leakage.py`, "
        f"= `cipherface audit`). {len(pairs)} pairs ({sum(p.same_person for p in pairs)} same person), "
        f"{len(embeddings)} photos, DeepFace Dlib, cosine at 0.07.\n\n"
        "Matcher: AUC / best accuracy over every threshold it could pick (0.5 / 0.731 = chance: always "
        "'different'); ranking: top-1 identity for each photo against the others' references "
        f"(chance {chance:.3f}). Key owner: the same tasks on its decrypted results and its own embeddings.\n\n"
        + table(
            [
                "backend",
                "scheme",
                "the matcher sees",
                "matcher: pairs",
                "matcher: linking queries",
                "matcher: ranking top-1",
                "key owner: pairs (AUC / acc. at 0.07)",
                "key owner: linking",
                "key owner: ranking top-1",
                "1:1 ms (matcher)",
                "reference KB",
                "probe KB",
                "result KB",
            ],
            rows,
        )
    )
    if not args.no_write:
        write_section("leakage", text, DOC)
    print(text)


if __name__ == "__main__":
    main()
