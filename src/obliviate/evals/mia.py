"""Membership inference: can an attacker still tell the forget set (members) from the holdout set?

Each attack turns per-token log-probabilities into a score, **higher = more likely a member**
(trained on), and the AUC of separating forget (members, label 1) from holdout
(non-members, label 0) by that score is the metric: 0.5 = no signal, 1.0 = every forget text looks
trained on. A perfect unlearner looks like the gold model (retrained without the forget set), whose
AUC is near 0.5 here because forget and holdout people are drawn alike — so every AUC is reported
"closer to gold is better" (`higher_is_better=None`): an AUC far *below* gold's is over-unlearning,
itself a membership signal (Hayes et al. 2024, "Inexact unlearning needs more careful evaluations").

What is scored. LOSS, zlib and the reference attack score QA answers given their question
(`mia_samples`). Min-K%, Min-K%++ and PrivLeak score passages (`passage_samples`: the forget /
holdout biographies, or MUSE's raw-text passages): each passage after its first
`verbmem_prefix_words` words, given those words as a plain-text prompt. On 1-3-token answers
Min-K% at any k is the single least likely token, so k = 0.2 and MUSE's k = 0.4 gave the same AUC
(issue 17); MUSE itself runs Min-K% on its text passages. Without passages on both sides the
three are "n/a" with the reason.

Attacks (signs flipped where the paper's statistic is lower-for-members, so all read the same way):

- LOSS (Yeom et al. 2018): mean log p = -(mean NLL).
- zlib (Carlini et al. 2021): -(mean NLL) / zlib-compressed length in bytes (REFERENCE: NLL / zlib).
- Min-K% (Shi et al. 2024, arXiv 2310.16789): mean log p of the k% least likely tokens.
- Min-K%++ (Zhang et al. 2024, arXiv 2404.02936): mean of the bottom-k% z_t = (log p_t - mu_t) / sigma_t,
  mu_t / sigma_t the mean / std of log p under the model's own next-token distribution; needs
  `lm.token_stats` (white-box), "n/a" otherwise.
- Reference (Carlini et al. 2021): NLL_reference - NLL_candidate (how much easier the candidate
  finds the text than a reference model that never saw it).

PrivLeak (MUSE, Shi et al. 2024, arXiv 2407.06460) compares Min-K% (k = 40 %) passage AUCs with gold's.

    results, unavailable = mia_suite(lm, bench, reference=None, prefix_words=2)
    results["mia_min_k_auc"].value, unavailable.get("mia_min_k_pp_auc")
    privleak_metric(results["privleak_auc"].value, gold_results["privleak_auc"].value)
"""

from __future__ import annotations

import zlib

import torch
from sklearn.metrics import roc_auc_score

from obliviate.data import Benchmark, format_answer, format_prompt
from obliviate.evals.metric import MetricResult
from obliviate.evals.muse import split_prefix
from obliviate.models.protocol import LanguageModel

PRIVLEAK_K = 0.4  # MUSE's Min-K% ratio for PrivLeak
SIGMA_FLOOR = 1e-3  # Min-K%++: a near-deterministic next-token distribution (variance < 1e-6, as open-unlearning)

QA_KEYS = ("mia_loss_auc", "mia_zlib_auc", "mia_reference_auc")  # scored on QA answers
PASSAGE_KEYS = ("mia_min_k_auc", "mia_min_k_pp_auc", "privleak_auc")  # scored on passages
MIA_KEYS = ("mia_loss_auc", "mia_zlib_auc", "mia_min_k_auc", "mia_min_k_pp_auc", "mia_reference_auc",
            "privleak_auc")


def mia_samples(bench: Benchmark, split: str) -> tuple[list[str], list[str], list[int]]:
    """(prompts, answers, record index of each) over every trained phrasing of `split`'s QA records.

    Attacks score the answer tokens given the question, as open-unlearning's TOFU MIA does, and a
    record's score is the mean over its phrasings. Both choices cut seed noise in the gold model
    (measured on `tiny`, PrivLeak of gold seeds 1 and 2 against gold seed 0): scoring whole texts
    was dominated by the person's name — a gold model never trained on a surname keeps that token
    at its random initial embedding — and gave -10.5 %; answers after the canonical question gave
    -0.1 % and +5.7 %; the mean over the three phrasings gives -3.4 % and +4.6 %. One score per
    record: 100 forget vs 200 holdout on the default benchmark. (Min-K% and PrivLeak score passages
    instead, see `passage_samples`: on these 1-3-token answers every k picks the same token.)
    """
    prompts, answers, owner = [], [], []
    for i, r in enumerate(bench.split(split)):
        for q in r.get("phrasings") or [r["question"]]:
            prompts.append(format_prompt(q))
            answers.append(format_answer(r["answer"]))
            owner.append(i)
    return prompts, answers, owner


def passage_samples(bench: Benchmark, split: str, prefix_words: int = 2) -> tuple[list[str], list[str]]:
    """(prompts, answers) over `split`'s passages (`bench.bios_of`): the first `prefix_words` words
    as a plain-text prompt, " " + the remaining words as the answer; passages no longer than the
    prefix are skipped.

    Passages are trained as plain text after bos, so this scores the trained text itself, as
    `muse.verbmem` prompts it. The prefix is left out of the score on purpose: in a built-in
    biography it is the person's name, and a gold model never trained on a surname keeps that
    token at its random initial embedding, which dominated whole-text scores (see `mia_samples`).
    """
    if prefix_words < 1:
        raise ValueError(f"prefix_words must be >= 1, got {prefix_words!r}; default 2 (the name of a biography)")
    pairs = [split_prefix(b["text"], prefix_words) for b in bench.bios_of(split)]
    pairs = [(prefix, " " + rest) for prefix, rest in pairs if rest]
    return [p for p, _ in pairs], [a for _, a in pairs]


def _per_record(scores: list[float], owner: list[int]) -> list[float]:
    """Mean score of each record over its phrasings (`owner` maps each score to its record)."""
    sums, counts = [0.0] * (max(owner) + 1), [0] * (max(owner) + 1)
    for s, i in zip(scores, owner, strict=True):
        sums[i] += s
        counts[i] += 1
    return [a / c for a, c in zip(sums, counts)]


def loss_score(lp: torch.Tensor) -> float:
    """LOSS attack: mean token log p = -(mean NLL). Higher = member."""
    _nonempty(lp)
    return lp.double().mean().item()


def zlib_score(lp: torch.Tensor, text: str) -> float:
    """zlib attack: -(mean NLL) / len(zlib.compress(text as UTF-8)). Higher = member.

    REFERENCE's statistic is mean NLL / zlib length (lower = member); obliviate negates it so that
    every attack score points the same way. The zlib length discounts texts that are merely easy.
    """
    _nonempty(lp)
    return lp.double().mean().item() / len(zlib.compress(text.encode("utf-8")))


def _k_count(n: int, k: float) -> int:
    if not 0 < k <= 1:
        raise ValueError(f"k must be in (0, 1], got {k!r}; e.g. 0.2 (default) or 0.4 (MUSE)")
    return max(1, int(n * k))  # floor, as the Min-K% code does, but never zero tokens


def min_k_score(lp: torch.Tensor, k: float = 0.2) -> float:
    """Min-K%: mean log p of the max(1, floor(k * n)) least likely tokens. Higher = member.

    (REFERENCE states it as the mean of -log p over those tokens, lower = member: same ranking.)
    """
    _nonempty(lp)
    return torch.sort(lp.double()).values[: _k_count(len(lp), k)].mean().item()


def min_k_plus_plus_score(lp: torch.Tensor, mu: torch.Tensor, sigma: torch.Tensor, k: float = 0.2) -> float:
    """Min-K%++: mean of the bottom max(1, floor(k * n)) z_t = (lp_t - mu_t) / sigma_t. Higher = member.

    sigma is floored at 1e-3 (a point-mass next-token distribution would divide by zero), the same
    guard as open-unlearning's variance floor of 1e-6.
    """
    _nonempty(lp)
    if not len(lp) == len(mu) == len(sigma):
        raise ValueError(f"lp, mu and sigma differ in length: {len(lp)}, {len(mu)}, {len(sigma)}")
    z = (lp.double() - mu.double()) / sigma.double().clamp_min(SIGMA_FLOOR)
    return torch.sort(z).values[: _k_count(len(z), k)].mean().item()


def _nonempty(lp: torch.Tensor) -> None:
    if lp.numel() == 0:
        raise ValueError("cannot score a text with no tokens")


def auc(member_scores: list[float], nonmember_scores: list[float]) -> float:
    """ROC AUC of telling members (label 1) from non-members (label 0) by score (higher = member)."""
    if not member_scores or not nonmember_scores:
        raise ValueError(f"auc needs members and non-members; got {len(member_scores)} and {len(nonmember_scores)}")
    labels = [1] * len(member_scores) + [0] * len(nonmember_scores)
    return float(roc_auc_score(labels, [*member_scores, *nonmember_scores]))


def _auc_metric(name: str, members: list[float], nonmembers: list[float], what: str) -> MetricResult:
    return MetricResult(
        name, auc(members, nonmembers), [*members, *nonmembers], None,
        f"membership-inference AUC, forget (members) vs holdout (non-members), by {what}; per_example: "
        f"{len(members)} forget then {len(nonmembers)} holdout scores (higher = member); closer to gold is better")


def mia_suite(lm: LanguageModel, bench: Benchmark, reference: LanguageModel | None = None, k: float = 0.2,
              privleak_k: float = PRIVLEAK_K, prefix_words: int = 2) -> tuple[dict[str, MetricResult], dict[str, str]]:
    """Every membership-inference AUC for `lm`, and why any is unavailable: (results, unavailable).

    Keys (all `higher_is_better=None`: closer to the gold model's AUC is better), on QA answers:
    `mia_loss_auc`, `mia_zlib_auc`, `mia_reference_auc` (only with `reference`); on passages cut
    after `prefix_words` words (`passage_samples`): `mia_min_k_auc` (Min-K% at `k`),
    `mia_min_k_pp_auc` (only if `lm` has `token_stats`) and `privleak_auc` (Min-K% at `privleak_k`,
    MUSE's 0.4: the input of `privleak_metric`). A missing key is in `unavailable` with the reason,
    for the report to show "n/a". One scoring pass per model and kind of text.
    """
    results, unavailable = _qa_attacks(lm, bench, reference)
    passage_results, passage_unavailable = _passage_attacks(lm, bench, k, privleak_k, prefix_words)
    return {**results, **passage_results}, {**unavailable, **passage_unavailable}


def _qa_attacks(lm: LanguageModel, bench: Benchmark, reference: LanguageModel | None
                ) -> tuple[dict[str, MetricResult], dict[str, str]]:
    """LOSS, zlib and reference AUCs on QA answers given their question, one score per record."""
    (fp, fa, fo), (hp, ha, ho) = mia_samples(bench, "forget"), mia_samples(bench, "holdout")
    if not fa or not ha:
        empty = "forget" if not fa else "holdout"
        return {}, {key: f"the {empty} split is empty; membership inference on QA answers needs forget and "
                         "holdout records" for key in QA_KEYS}
    prompts, texts = [*fp, *hp], [*fa, *ha]
    split_at = len(fa)
    lps = lm.log_probs(prompts, texts)

    def metric(name: str, scores: list[float], what: str) -> MetricResult:
        return _auc_metric(name, _per_record(scores[:split_at], fo), _per_record(scores[split_at:], ho),
                           f"{what}, mean over each record's phrasings")

    results = {
        "mia_loss_auc": metric("mia_loss_auc", [loss_score(lp) for lp in lps], "LOSS (mean log p)"),
        "mia_zlib_auc": metric("mia_zlib_auc", [zlib_score(lp, t) for lp, t in zip(lps, texts)],
                               "zlib (-mean NLL / zlib bytes of the answer)"),
    }
    if reference is None:
        return results, {"mia_reference_auc": "no reference model given"}
    ref = reference.log_probs(prompts, texts)
    results["mia_reference_auc"] = metric(
        "mia_reference_auc", [loss_score(a) - loss_score(b) for a, b in zip(lps, ref)],
        f"reference attack (NLL under {reference.name} - NLL under {lm.name})")
    return results, {}


def _passage_attacks(lm: LanguageModel, bench: Benchmark, k: float, privleak_k: float, prefix_words: int
                     ) -> tuple[dict[str, MetricResult], dict[str, str]]:
    """Min-K%, Min-K%++ and PrivLeak's Min-K% (k = `privleak_k`) AUCs on passages, one score per passage."""
    from obliviate.models.hf import plain_prompts  # lazy: importing the evals must not load transformers

    (fp, fa), (hp, ha) = passage_samples(bench, "forget", prefix_words), passage_samples(bench, "holdout", prefix_words)
    if not fa or not ha:
        reason = (f"needs passages (biographies / raw texts) for both forget and holdout; this benchmark has "
                  f"{len(fa)} forget and {len(ha)} holdout passages longer than {prefix_words} words")
        return {}, {key: reason for key in PASSAGE_KEYS}
    prompts, texts, split_at = [*fp, *hp], [*fa, *ha], len(fa)
    unavailable: dict[str, str] = {}
    with plain_prompts(lm):  # passages were trained as bos + text, never inside a chat template
        if hasattr(lm, "token_stats"):
            stats = lm.token_stats(prompts, texts)  # carries lp too: no second pass
            lps = [s[0] for s in stats]
        else:
            stats, lps = None, lm.log_probs(prompts, texts)
            unavailable["mia_min_k_pp_auc"] = (f"{lm.name} does not expose token_stats (a black-box model): "
                                               "Min-K%++ needs the full next-token distribution")

    def metric(name: str, scores: list[float], what: str) -> MetricResult:
        return _auc_metric(name, scores[:split_at], scores[split_at:],
                           f"{what} on each passage after its first {prefix_words} words")

    results = {"mia_min_k_auc": metric("mia_min_k_auc", [min_k_score(lp, k) for lp in lps], f"Min-K% (k = {k:g})")}
    if stats is not None:
        results["mia_min_k_pp_auc"] = metric(
            "mia_min_k_pp_auc", [min_k_plus_plus_score(*s, k=k) for s in stats], f"Min-K%++ (k = {k:g})")
    results["privleak_auc"] = metric(
        "privleak_auc", [min_k_score(lp, privleak_k) for lp in lps], f"Min-K% (k = {privleak_k:g}, MUSE PrivLeak)")
    return results, unavailable


def priv_leak(auc_candidate: float, auc_gold: float) -> float:
    """MUSE PrivLeak in percent: (AUC_candidate - AUC_gold) / AUC_gold * 100; about 0 is ideal.

    obliviate's AUC is the conventional one (members = forget = positive class, higher score =
    member), so **positive = the candidate leaks more membership than gold** (under-unlearning;
    the target model is strongly positive) and **negative = less than gold** (over-unlearning:
    the forget set now looks *less* familiar than never-seen text, itself a signal).

    MUSE's paper orients its AUC the other way (AUC' = 1 - AUC) and reports
    (AUC'_c - AUC'_g) / AUC'_g, so its signs are the reverse of ours (its target model scores
    about -100) and magnitudes match only when gold's AUC is 0.5. open-unlearning's `privleak`
    reproduces MUSE's (1 - AUC) form; its `rel_diff` (and earlier `privleak`) uses ours.
    """
    if not auc_gold > 0:
        raise ValueError(f"gold AUC must be > 0 to compute PrivLeak, got {auc_gold!r}")
    return (auc_candidate - auc_gold) / auc_gold * 100


def privleak_metric(auc_candidate: float, auc_gold: float, k: float = PRIVLEAK_K) -> MetricResult:
    """`priv_leak` from the candidate's and gold's Min-K% (k = 0.4) AUCs (`privleak_auc` of `mia_suite`)."""
    return MetricResult("priv_leak", priv_leak(auc_candidate, auc_gold), [], None,
                        f"MUSE PrivLeak %: (Min-K% k={k:g} AUC - gold's) / gold's x 100; positive = leaks "
                        "membership (under-unlearning), negative = over-unlearning; ~0 is ideal "
                        "(sign opposite to MUSE's paper)")
