"""Membership scores for the verdict: can the forget items still be told from items never trained on?

Per item one score, higher = member (the attacks of `obliviate.evals.mia`):
- `mia_loss`, `mia_zlib`: on each QA answer given its question, mean over the record's phrasings;
- `mia_min_k`, `mia_min_k_pp`: on passages (the text after each passage's first words, given
  them), only when both sides have passages: on a 1-3-token answer Min-K% is just the least
  likely token. Min-K%++ needs `token_stats` (white-box models).

Members are `bench.forget` (and forget passages), non-members `bench.holdout` (holdout passages):
the verdict compares the AUC with gold's on the same items, or with chance (0.5) gold-free.
"""

from __future__ import annotations

from obliviate.attacks.verdict import Membership
from obliviate.data import Benchmark
from obliviate.evals.mia import loss_score, mia_samples, min_k_plus_plus_score, min_k_score, zlib_score
from obliviate.evals.muse import split_prefix


def _per_record(values: list[float], owner: list[int], records: list[dict]) -> tuple[list[float], list[str]]:
    sums: dict[int, list[float]] = {}
    for v, i in zip(values, owner, strict=True):
        sums.setdefault(i, []).append(v)
    return [sum(sums[i]) / len(sums[i]) for i in sorted(sums)], [records[i]["person"] for i in sorted(sums)]


def _qa_scores(lm, bench: Benchmark) -> dict[str, tuple[list[float], list[str], list[float], list[str]]]:
    (fp, fa, fo), (hp, ha, ho) = mia_samples(bench, "forget"), mia_samples(bench, "holdout")
    lps = lm.log_probs([*fp, *hp], [*fa, *ha])
    texts, cut = [*fa, *ha], len(fa)
    out = {}
    for name, fn in (("mia_loss", lambda lp, t: loss_score(lp)), ("mia_zlib", zlib_score)):
        s = [fn(lp, t) for lp, t in zip(lps, texts)]
        out[name] = (*_per_record(s[:cut], fo, bench.forget), *_per_record(s[cut:], ho, bench.holdout))
    return out


def _passage_scores(lm, bench: Benchmark, k: float, prefix_words: int) -> dict[str, tuple]:
    members, nonmembers = bench.bios_of("forget"), bench.bios_of("holdout")
    rows = [split_prefix(b["text"], prefix_words) for b in [*members, *nonmembers]]
    keep = [i for i, (_, rest) in enumerate(rows) if rest.strip()]
    prompts, rests = [rows[i][0] for i in keep], [" " + rows[i][1] for i in keep]
    subjects = [b["person"] for b in [*members, *nonmembers]]
    cut = sum(1 for i in keep if i < len(members))
    split = lambda s: (s[:cut], [subjects[i] for i in keep[:cut]], s[cut:], [subjects[i] for i in keep[cut:]])  # noqa
    out = {}
    if hasattr(lm, "token_stats"):
        stats = lm.token_stats(prompts, rests)
        out["mia_min_k"] = split([min_k_score(s[0], k) for s in stats])
        out["mia_min_k_pp"] = split([min_k_plus_plus_score(*s, k=k) for s in stats])
    else:
        out["mia_min_k"] = split([min_k_score(lp, k) for lp in lm.log_probs(prompts, rests)])
    return out


def membership_scores(lm, bench: Benchmark, passages: bool = False, k: float = 0.2, prefix_words: int = 2
                      ) -> tuple[dict[str, Membership], dict[str, str]]:
    """({test: Membership}, {test: why skipped}) for one model on bench's forget vs holdout items."""
    skipped: dict[str, str] = {}
    if not bench.forget or not bench.holdout:
        return {}, {"mia": "membership inference needs forget and reference (holdout) QA records"}
    raw = _qa_scores(lm, bench)
    has_passages = bool(bench.bios_of("forget")) and bool(bench.bios_of("holdout"))
    if passages and has_passages:
        raw |= _passage_scores(lm, bench, k, prefix_words)
        if "mia_min_k_pp" not in raw:
            skipped["mia_min_k_pp"] = f"{lm.name} does not expose token_stats (black box): Min-K%++ needs them"
    else:
        why = ("passages are off (attacks.passages=false)" if has_passages and not passages
               else "needs passages on both the forget and the reference side")
        skipped |= {"mia_min_k": why, "mia_min_k_pp": why}
    return {n: Membership(*v) for n, v in raw.items()}, skipped
