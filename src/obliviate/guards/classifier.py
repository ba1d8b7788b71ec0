"""The prompt classifier every guard shares: does a prompt touch a forget target, and which ones?

score(prompt) = max(cosine similarity to the nearest target, 1 if a target's alias is in the prompt)
fired(prompt) = alias hit, or similarity > threshold

The threshold is calibrated on prompts that must not fire (retain and world questions) to a false-
positive rate: with n negatives and budget floor(fpr * n), alias hits among them spend the budget
first (an exact name always fires), and the threshold is the (remaining budget + 1)-th highest
similarity of the rest, so at most `floor(fpr * n)` calibration negatives fire (ties fire fewer).
This is the prompt classifier of ECO (Liu et al. 2024, arXiv 2406.07933) and GUARD (2025), with
similarity + alias matching in place of a trained classifier.

    clf = PromptClassifier(store, top_k=3)
    clf.calibrate(negative_prompts, fpr=0.01)
    d = clf.classify(["Question: Where was Sorrel Foxley born?\\nAnswer:"])[0]
    d.fired, d.score, d.targets        # True, 1.0, [index of Sorrel Foxley, 2 nearest others]
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from obliviate.errors import ObliviateError
from obliviate.guards.targets import TargetStore


@dataclass(frozen=True)
class Decision:
    fired: bool
    score: float
    targets: tuple[int, ...]  # top-k target indices: alias hits first, then by similarity
    spans: tuple[tuple[int, int], ...]  # character spans of alias mentions in the prompt


def calibrate_threshold(similarities: np.ndarray, alias_hit: np.ndarray, fpr: float) -> float:
    """The similarity threshold that lets at most floor(fpr * n) of n negatives fire (see module doc).

    Returns 1.0 (similarity never fires) when alias hits alone use the budget up.
    """
    if not 0 <= fpr < 1:
        raise ObliviateError(f"the classifier's false-positive rate must be in [0, 1), got {fpr!r}; e.g. 0.01")
    n = len(similarities)
    if n == 0:
        raise ObliviateError("no negative prompts to calibrate the classifier on; the benchmark needs retain "
                             "or world questions")
    budget = math.floor(fpr * n + 1e-9) - int(np.sum(alias_hit))
    rest = np.sort(np.asarray(similarities, dtype=np.float64)[~np.asarray(alias_hit, dtype=bool)])[::-1]
    if budget < 0:
        return 1.0
    return float(rest[budget]) if budget < len(rest) else -1.0


class PromptClassifier:
    """Alias matching + embedding similarity over a `TargetStore`; decisions are cached per prompt."""

    def __init__(self, store: TargetStore, threshold: float = 1.0, top_k: int = 3, cache: bool = True,
                 embed_named: bool = True):
        """embed_named=False: a prompt that names a target fires on the name alone and retrieves only
        the targets it names, without the embedding call (the server: the embedding model costs more
        than a small served model's generation)."""
        if top_k < 1:
            raise ObliviateError(f"top_k must be >= 1, got {top_k!r}")
        self.store, self.threshold, self.top_k, self.cache = store, threshold, top_k, cache
        self.embed_named = embed_named
        self._decisions: dict[str, Decision] = {}

    def _raw(self, prompts: list[str]) -> tuple[np.ndarray, np.ndarray, list[list[tuple[int, int, int]]],
                                                np.ndarray, np.ndarray]:
        """(best similarity, alias hit?, alias hits, top-k indices (-1: none), top-k similarities) per prompt."""
        encode = self.store.embedder.encode if self.cache else self.store.embedder.encode_uncached
        hits = [self.store.alias_hits(p) for p in prompts]
        need = [i for i, h in enumerate(hits) if self.embed_named or not h]
        k = min(self.top_k, len(self.store))
        idx, sims = np.full((len(prompts), k), -1), np.zeros((len(prompts), k), dtype=np.float32)
        if need:
            idx[need], sims[need] = self.store.search(encode([prompts[i] for i in need]), self.top_k)
        return sims[:, 0], np.array([bool(h) for h in hits]), hits, idx, sims

    def classify(self, prompts: list[str]) -> list[Decision]:
        todo = [p for p in dict.fromkeys(prompts) if p not in self._decisions] if self.cache else list(prompts)
        fresh = {}
        if todo:
            best, hit, hits, idx, _ = self._raw(todo)
            for j, p in enumerate(todo):
                named = list(dict.fromkeys(t for t, _, _ in hits[j]))
                nearest = [t for t in idx[j].tolist() if t >= 0]
                targets = tuple(list(dict.fromkeys([*named, *nearest]))[: max(self.top_k, len(named))])
                fired = bool(hit[j] or best[j] > self.threshold)
                fresh[p] = Decision(fired, 1.0 if hit[j] else float(best[j]), targets,
                                    tuple((s, e) for _, s, e in hits[j]))
            if self.cache:
                self._decisions.update(fresh)
        table = self._decisions if self.cache else fresh
        return [table[p] for p in prompts]

    def calibrate(self, negatives: list[str], fpr: float) -> float:
        """Set and return the threshold for a false-positive rate `fpr` on `negatives`."""
        best, hit, *_ = self._raw(list(negatives))
        self.threshold = calibrate_threshold(best, hit, fpr)
        self._decisions.clear()
        return self.threshold

    def fire_rate(self, prompts: list[str]) -> float | None:
        """Share of `prompts` that fire (None for no prompts)."""
        return sum(d.fired for d in self.classify(prompts)) / len(prompts) if prompts else None
