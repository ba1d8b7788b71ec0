"""The first evaluation suite: QA on every split, TOFU truth ratios and forget quality vs gold.

    gold_res = evaluate(gold, bench)
    gold_ratios = gold_res["forget_truth_ratio"].per_example     # raw truth ratios R
    gold_res["forget_quality"] = forget_quality_metric(gold_ratios, gold_ratios)  # no second pass
    generations = {}                                              # filled with split -> answers
    cand_res = evaluate(candidate, bench, gold_ratios, generations=generations)
"""

from __future__ import annotations

import math

from obliviate.data import Benchmark
from obliviate.evals.metric import MetricResult
from obliviate.evals.qa import qa_metrics
from obliviate.evals.tofu import forget_quality, truth_ratio_score, truth_ratios
from obliviate.models.protocol import LanguageModel

QA_EVAL_SPLITS = ("forget", "retain", "world", "neighbours")

# (key, header, higher_is_better) of the terminal table; None = closer to gold is better.
METRIC_COLUMNS: list[tuple[str, str, bool | None]] = [
    ("forget_acc", "forget acc", False),
    ("retain_acc", "retain acc", True),
    ("world_acc", "world acc", True),
    ("neighbours_acc", "neigh acc", True),
    ("forget_rouge", "forget rouge", False),
    ("forget_nll", "forget nll", None),
    ("forget_truth_ratio", "forget TR", None),
    ("forget_quality", "forget quality", True),
]


def forget_quality_metric(candidate_ratios: list[float], gold_ratios: list[float]) -> MetricResult:
    """`forget_quality` as a MetricResult (TOFU, arXiv 2401.06121): KS p-value vs gold's ratios."""
    return MetricResult("forget_quality", forget_quality(candidate_ratios, gold_ratios), [], True,
                        "KS-test p-value of forget truth ratios vs gold (>= 0.05: indistinguishable from gold)")


def evaluate(lm: LanguageModel, bench: Benchmark, gold_forget_ratios: list[float] | None = None,
             generations: dict[str, list[str]] | None = None) -> dict[str, MetricResult]:
    """Every metric of the suite for one model, keyed by name (splits without records are skipped).

    `forget_truth_ratio.per_example` holds the raw truth ratios R (its value is the TOFU summary
    mean(min(R, 1/R))): evaluate gold first and pass that list as `gold_forget_ratios` to get
    `forget_quality` for every other model; without it, `forget_quality` is omitted.
    Pass a dict as `generations` to receive each split's greedy answers (for report examples).
    """
    results: dict[str, MetricResult] = {}
    for split in QA_EVAL_SPLITS:
        if bench.split(split):
            split_results, generated = qa_metrics(lm, bench.split(split), split)
            results.update(split_results)
            if generations is not None:
                generations[split] = generated
    if "forget_nll" in results:  # P(a|q) = exp(-NLL): the same scores, no second forward pass
        prob = [math.exp(-x) for x in results["forget_nll"].per_example]
        results["forget_prob"] = MetricResult("forget_prob", sum(prob) / len(prob), prob, None,
                                              "length-normalised P(answer|question) on forget (TOFU)")
    for split, on_forget in (("forget", True), ("retain", False)):
        if bench.split(split):
            ratios = truth_ratios(lm, bench.split(split))
            summary = "mean(min(R, 1/R))" if on_forget else "mean(max(0, 1 - R))"
            results[f"{split}_truth_ratio"] = MetricResult(
                f"{split}_truth_ratio", truth_ratio_score(ratios, on_forget), ratios, None if on_forget else True,
                f"TOFU truth ratio on {split}: {summary}; per_example holds the raw ratios R")
    if gold_forget_ratios is not None and "forget_truth_ratio" in results:
        results["forget_quality"] = forget_quality_metric(results["forget_truth_ratio"].per_example,
                                                          gold_forget_ratios)
    return results
