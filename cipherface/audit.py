"""What an honest-but-curious matcher learns from exactly what it receives, scheme by scheme.

For every backend, on the shared labelled photos, the key owner encrypts each photo as a reference
and as a probe, as 1:1 and the gallery would send them. The matcher then attacks with what it
holds (``FHEBackend.visible``: the clear values a blob shows without the secret key; where it
shows none, the blobs' bytes) at three tasks, and the key owner's own success at each is reported
beside it:

- **pairs**: tell same-person from different-person pairs, from one 1:1 comparison's operands;
- **linking**: tell whether two probes (two queries) are of the same person;
- **ranking**: name the right person first for a probe against a gallery of everyone else's
  references (top-1 among photos of other identities and the probe's own).

Success is the area under the ROC curve (0.5: chance) and the best accuracy over all thresholds
for pairs and linking, top-1 accuracy for ranking (chance: the share of the probe's own person
among the other photos, averaged). Costs: one 1:1 comparison
(matcher's time) and the bytes of a reference, a probe and a result.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
from tqdm import tqdm

from cipherface.capabilities import DISCLOSURES, protocol_for
from cipherface.evaluation import Pair
from cipherface.plugins import get_protocol
from cipherface.roles import KeyOwner, Matcher


@dataclass
class Audit:
    backend: str
    scheme: str
    disclosures: list[str]
    visible: dict[str, bool] = field(default_factory=dict)  # what the matcher reads in the clear
    matcher: dict[str, float] = field(default_factory=dict)
    key_owner: dict[str, float] = field(default_factory=dict)
    cost: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def auc(scores: np.ndarray, same: np.ndarray) -> float:
    """P(a same-person score < a different-person score), ties counting half: 0.5 is chance."""
    s, d = scores[same], scores[~same]
    if not len(s) or not len(d):
        return float("nan")
    less = (s[:, None] < d[None, :]).mean()
    ties = (s[:, None] == d[None, :]).mean()
    return float(less + 0.5 * ties)


def best_accuracy(scores: np.ndarray, same: np.ndarray) -> float:
    """The accuracy of the best threshold an attacker could pick (an upper bound on its success)."""
    cuts = np.concatenate([[-np.inf], np.unique(scores)])
    return float(max(np.mean((scores <= c) == same) for c in cuts))


def identities(pairs: list[Pair]) -> dict[str, int]:
    """People as groups of photos joined by same-person pairs."""
    parent: dict[str, str] = {}

    def root(x: str) -> str:
        parent.setdefault(x, x)
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for p in pairs:
        root(p.image_a), root(p.image_b)
        if p.same_person:
            parent[root(p.image_a)] = root(p.image_b)
    roots = sorted({root(x) for x in parent})
    return {x: roots.index(root(x)) for x in parent}


def _cosine_distance(x: np.ndarray, y: np.ndarray) -> float:
    nx, ny = np.linalg.norm(x), np.linalg.norm(y)
    return 1.0 - float(x @ y) / (nx * ny) if nx and ny else 1.0


def run(
    backend: str,
    embeddings: dict[str, np.ndarray],
    pairs: list[Pair],
    metric: str = "cosine",
    threshold: float = 0.07,
    progress: bool = True,
    params: str | None = None,
) -> Audit:
    """The three attacks on one backend (its default parameter set, or ``params``), with the key
    owner's success beside them."""
    owner = KeyOwner.generate(backend, params)
    matcher = Matcher(owner.public_bundle())
    protocol = protocol_for(owner.backend, metric)
    names = sorted(embeddings)
    bar = tqdm(total=2 * len(names), desc=f"encrypting ({backend})", unit="blob", disable=not progress)
    refs, probes = {}, {}
    for n in names:
        refs[n] = owner.encrypt(embeddings[n], metric)
        probes[n] = owner.encrypt(embeddings[n], metric, probe=True)
        bar.update(2)
    bar.close()

    def seen(blob: bytes) -> np.ndarray | None:
        ct, meta = matcher.backend.load_ciphertext(blob)
        view = matcher.backend.visible(ct)
        return None if view is None else view[: meta["dim"]]

    views = {"ref": {n: seen(refs[n]) for n in names}, "probe": {n: seen(probes[n]) for n in names}}

    # every blob's bytes as numbers, read once: where nothing is visible the matcher compares them
    raw = {
        kind: {n: np.frombuffer(blob, np.uint8).astype(float) for n, blob in blobs.items()}
        for kind, blobs in (("ref", refs), ("probe", probes))
    }

    def attack(kind_a: str, a: str, kind_b: str, b: str) -> float:
        va, vb = views[kind_a][a], views[kind_b][b]
        if va is not None and vb is not None:
            return _cosine_distance(va, vb)
        xa, xb = raw[kind_a][a], raw[kind_b][b]
        n = min(len(xa), len(xb))  # the same number of trailing bytes of each
        return _cosine_distance(xa[-n:], xb[-n:])

    # the key owner's own view: the metric in the clear (decrypted results equal it; tests check that)
    metric_of = get_protocol(metric)
    prepared = {n: metric_of.prepare(e) for n, e in embeddings.items()}
    plain = {(a, b): metric_of.plaintext(prepared[a], prepared[b]) for a in names for b in names}
    same = np.array([p.same_person for p in pairs])

    # pairs: one 1:1 comparison's operands (the reference and the probe), and the key owner's decisions
    timings, decided = [], []
    for p in tqdm(pairs, desc=f"1:1 comparisons ({backend})", unit="pair", disable=not progress):
        start = time.perf_counter()
        result = matcher.distance(refs[p.image_a], probes[p.image_b])
        timings.append(time.perf_counter() - start)
        decided.append(owner.decrypt_result(result, metric))
    decided = np.array(decided)
    pair_scores = np.array([attack("ref", p.image_a, "probe", p.image_b) for p in pairs])
    link_scores = np.array([attack("probe", p.image_a, "probe", p.image_b) for p in pairs])
    owner_link = np.array([plain[p.image_a, p.image_b] for p in pairs])

    # ranking: each photo as a probe against everyone else's references
    people = identities(pairs)
    hits_matcher = hits_owner = chance = 0.0
    for n in names:
        others = [m for m in names if m != n]
        chance += sum(people[m] == people[n] for m in others) / len(others)
        guess = min(others, key=lambda m: attack("probe", n, "ref", m))
        best = min(others, key=lambda m: plain[n, m])
        hits_matcher += people[guess] == people[n]
        hits_owner += people[best] == people[n]
    cutoff = protocol.cutoff(threshold)
    return Audit(
        backend=backend,
        scheme=owner.backend.scheme,
        disclosures=[DISCLOSURES[c][0] for c in sorted(set(owner.backend.capabilities) & set(DISCLOSURES))],
        visible={kind: any(v is not None for v in views[kind].values()) for kind in ("ref", "probe")},
        matcher={
            "pairs_auc": auc(pair_scores, same),
            "pairs_best_accuracy": best_accuracy(pair_scores, same),
            "linking_auc": auc(link_scores, same),
            "linking_best_accuracy": best_accuracy(link_scores, same),
            "ranking_top1": hits_matcher / len(names),
        },
        key_owner={
            "pairs_auc": auc(decided, same),
            "pairs_accuracy": float(np.mean((decided <= cutoff) == same)),
            "linking_auc": auc(owner_link, same),
            "ranking_top1": hits_owner / len(names),
        },
        cost={
            "one_to_one_ms": float(np.median(timings) * 1000),
            "reference_kb": float(np.median([len(b) for b in refs.values()]) / 1e3),
            "probe_kb": float(np.median([len(b) for b in probes.values()]) / 1e3),
            "result_kb": len(result) / 1e3,
            "chance_ranking_top1": chance / len(names),
        },
    )
