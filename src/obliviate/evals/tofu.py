"""TOFU metrics (Maini et al. 2024, "TOFU: A Task of Fictitious Unlearning", arXiv 2401.06121).

P(a|q) is length-normalised: exp(-mean token NLL of a). Truth ratio per question:
R = mean over perturbed answers â of P(â|q) / P(ã|q), with ã the paraphrased answer.
Forget quality: KS-test p-value between a model's forget-set truth ratios and the gold
(retain-only) model's; p >= 0.05 means the two are statistically indistinguishable.

Convention: obliviate averages the ratios (the paper's formula). The TOFU and open-unlearning code
average the perturbed answers' log-probabilities instead (a geometric mean, so their R <= ours).

    ratios = truth_ratios(lm, bench.forget)
    truth_ratio_score(ratios, on_forget=True), forget_quality(ratios, gold_ratios)
"""

from __future__ import annotations

import math

from scipy.stats import ks_2samp

from obliviate.data import format_answer, format_prompt
from obliviate.models.protocol import LanguageModel

_MAX_EXP = 700.0  # math.exp overflows just above 709


def mean_log_probs(lm: LanguageModel, records: list[dict], answers: list[list[str]]) -> list[list[float]]:
    """log of the length-normalised P(a|q), for each answer of each record, in one scoring call."""
    prompts = [format_prompt(r["question"]) for r, ans in zip(records, answers, strict=True) for _ in ans]
    flat = lm.log_probs(prompts, [format_answer(a) for ans in answers for a in ans])
    scores = iter(lp.mean().item() for lp in flat)
    return [[next(scores) for _ in ans] for ans in answers]


def answer_probability(lm: LanguageModel, records: list[dict]) -> list[float]:
    """Length-normalised P(answer | question) per record: exp(-mean token NLL)."""
    return [math.exp(s[0]) for s in mean_log_probs(lm, records, [[r["answer"]] for r in records])]


def truth_ratios(lm: LanguageModel, records: list[dict]) -> list[float]:
    """Per record R = mean_j exp(lognorm(perturbed_j) - lognorm(paraphrased)), all in one scoring call.

    R < 1: the model prefers the true (paraphrased) answer; R ≈ 1: no preference.
    """
    for r in records:
        if not r["perturbed_answers"]:
            raise ValueError(f"record {r['question']!r} has no perturbed_answers; truth ratios need at least one")
    scores = mean_log_probs(lm, records, [[r["paraphrased_answer"], *r["perturbed_answers"]] for r in records])
    return [sum(math.exp(min(s - true, _MAX_EXP)) for s in perturbed) / len(perturbed)
            for true, *perturbed in scores]


def truth_ratio_score(ratios: list[float], on_forget: bool) -> float:
    """TOFU's summary of truth ratios R, in [0, 1].

    on_forget=True: mean(min(R, 1/R)); 1 = no preference for the truth, like a model that never
    saw it (the goal on forget; TOFU calls higher better). on_forget=False (retain, world):
    mean(max(0, 1 - R)); higher = prefers the truth, like a model that knows it.
    """
    if not ratios:
        raise ValueError("truth_ratio_score needs at least one truth ratio")
    if on_forget:
        return sum(min(r, 1 / r) if r > 0 else 0.0 for r in ratios) / len(ratios)
    return sum(max(0.0, 1 - r) for r in ratios) / len(ratios)


def forget_quality(candidate_ratios: list[float], gold_ratios: list[float]) -> float:
    """KS-test p-value: candidate vs gold forget-set truth ratios (>= 0.05: indistinguishable)."""
    if not candidate_ratios or not gold_ratios:
        empty = "candidate" if not candidate_ratios else "gold"
        raise ValueError(f"forget_quality needs truth ratios from both models; the {empty} list is empty "
                         "(evaluate the gold model first and pass its forget_truth_ratio.per_example)")
    return float(ks_2samp(candidate_ratios, gold_ratios).pvalue)
