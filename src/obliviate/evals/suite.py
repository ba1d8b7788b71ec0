"""The first evaluation suite: QA on every split, TOFU truth ratios and forget quality vs gold.

    gold_res = evaluate(gold, bench)
    gold_ratios = gold_res["forget_truth_ratio"].per_example     # raw truth ratios R
    gold_res["forget_quality"] = forget_quality_metric(gold_ratios, gold_ratios)  # no second pass
    generations = {}                                              # filled with split -> answers
    cand_res = evaluate(candidate, bench, gold_ratios, generations=generations)
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from obliviate.data import Benchmark
from obliviate.evals.metric import MetricResult
from obliviate.evals.qa import qa_metrics
from obliviate.evals.tofu import forget_quality, truth_ratio_score, truth_ratios
from obliviate.models.protocol import LanguageModel

if TYPE_CHECKING:
    from obliviate.evals.multiple_choice import ChoiceSets

QA_EVAL_SPLITS = ("forget", "retain", "world", "neighbours")

# (key, header, higher_is_better) of the terminal table; None = closer to gold is better.
METRIC_COLUMNS: list[tuple[str, str, bool | None]] = [
    ("forget_acc", "forget acc", False),
    ("forget_em", "forget em", False),
    ("retain_acc", "retain acc", True),
    ("world_acc", "world acc", True),
    ("world_mc_acc", "world MC", True),
    ("neighbours_acc", "neigh acc", True),
    ("forget_rouge", "forget rouge", False),
    ("forget_nll", "forget nll", None),
    ("forget_truth_ratio", "forget TR", None),
    ("forget_quality", "forget quality", True),
    ("verbmem_forget", "VerbMem forget", False),
    ("priv_leak", "PrivLeak %", None),
    ("model_utility", "model utility", True),
]


def forget_quality_metric(candidate_ratios: list[float], gold_ratios: list[float]) -> MetricResult:
    """`forget_quality` as a MetricResult (TOFU, arXiv 2401.06121): KS p-value vs gold's ratios."""
    return MetricResult("forget_quality", forget_quality(candidate_ratios, gold_ratios), [], True,
                        "KS-test p-value of forget truth ratios vs gold (>= 0.05: indistinguishable from gold)")


def evaluate(lm: LanguageModel, bench: Benchmark, gold_forget_ratios: list[float] | None = None,
             generations: dict[str, list[str]] | None = None, reference: LanguageModel | None = None,
             gold_privleak_auc: float | None = None, mia_k: float = 0.2, privleak_k: float = 0.4,
             verbmem_prefix_words: int = 2, choices: "ChoiceSets | None" = None) -> dict[str, MetricResult]:
    """Every metric of the suite for one model, keyed by name (splits without records are skipped).

    `forget_truth_ratio.per_example` holds the raw truth ratios R (its value is the TOFU summary
    mean(min(R, 1/R))): evaluate gold first and pass that list as `gold_forget_ratios` to get
    `forget_quality`, gold as `reference` for the reference-based membership attack, and gold's
    `privleak_auc` value as `gold_privleak_auc` to get MUSE's PrivLeak. A metric the model or the
    benchmark cannot support is present with value None and the reason in its description ("n/a: ...");
    so is `priv_leak` when the benchmark has no forget or holdout passages for its Min-K% AUC.
    `verbmem_prefix_words` cuts passages for VerbMem and for the passage-based membership attacks.
    Pass a dict as `generations` to receive each split's greedy answers (for report examples).
    `choices` (metric name -> (questions, higher_is_better), see `multiple_choice.choice_sets`)
    adds multiple-choice accuracies; None evaluates the built-in world-fact choices (`world_mc_acc`).
    """
    from obliviate.evals.multiple_choice import choice_sets, multiple_choice_metric
    from obliviate.evals.mia import mia_suite, privleak_metric
    from obliviate.evals.muse import verbmem
    from obliviate.evals.utility import degenerate_share, model_utility, world_perplexity

    results: dict[str, MetricResult] = {}
    generations = {} if generations is None else generations
    for split in QA_EVAL_SPLITS:
        if bench.split(split):
            split_results, generations[split] = qa_metrics(lm, bench.split(split), split)
            results.update(split_results)
    for name, (questions, better) in (choice_sets() if choices is None else choices).items():
        results[name] = multiple_choice_metric(lm, questions, name, better)
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
    results["verbmem_forget"] = verbmem(lm, bench, "forget", verbmem_prefix_words)
    mia, unavailable = mia_suite(lm, bench, reference, mia_k, privleak_k, verbmem_prefix_words)
    results.update(mia)
    for name, reason in unavailable.items():
        results[name] = MetricResult(name, None, [], None, f"n/a: {reason}")
    if "privleak_auc" in unavailable:  # no passages: PrivLeak is n/a for the same reason, gold or not
        results["priv_leak"] = MetricResult("priv_leak", None, [], None, f"n/a: {unavailable['privleak_auc']}")
    elif gold_privleak_auc is not None:
        results["priv_leak"] = privleak_metric(results["privleak_auc"].value, gold_privleak_auc, privleak_k)
    if bench.retain and bench.world:
        results["model_utility"] = model_utility(
            lm, bench, {s: results[f"{s}_rouge"].value for s in ("retain", "world")},
            results["retain_truth_ratio"].per_example)
    if bench.world:
        results["world_perplexity"] = world_perplexity(lm, bench)
    results["degenerate_share"] = degenerate_share(generations.get("retain", []) + generations.get("world", []))
    return results
