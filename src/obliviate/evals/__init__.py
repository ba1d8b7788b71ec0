"""Metrics that read a `LanguageModel`, never a method's internals; each returns a `MetricResult`."""

from obliviate.evals.metric import MetricResult
from obliviate.evals.qa import answer_match, answer_nll, answer_recalled, qa_metrics, rouge_l_recall
from obliviate.evals.suite import METRIC_COLUMNS, evaluate, forget_quality_metric
from obliviate.evals.tofu import answer_probability, forget_quality, truth_ratio_score, truth_ratios

__all__ = ["METRIC_COLUMNS", "MetricResult", "answer_match", "answer_nll", "answer_probability", "answer_recalled",
           "evaluate", "forget_quality", "forget_quality_metric", "qa_metrics", "rouge_l_recall", "truth_ratio_score",
           "truth_ratios"]
