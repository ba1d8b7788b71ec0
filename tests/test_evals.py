"""Metrics against hand-computed values and scipy, through a fake `LanguageModel`."""

import math

import numpy as np
import pytest
import torch
from scipy.stats import ks_2samp

from obliviate.data import Benchmark
from obliviate.evals import (METRIC_COLUMNS, MetricResult, answer_match, answer_probability, answer_recalled,
                             evaluate, forget_quality, qa_metrics, rouge_l_recall, truth_ratio_score, truth_ratios)
from obliviate.models.protocol import LanguageModel


class FakeLM:
    """Fixed per-token log-probs per answer string and fixed generations per question."""

    name = "fake"

    def __init__(self, token_log_probs: dict[str, list[float]], answers: dict[str, str] | None = None,
                 default: list[float] | None = None):
        self.token_log_probs, self.answers, self.default = token_log_probs, answers or {}, default
        self.log_prob_calls = 0

    def log_probs(self, prompts, answers):
        self.log_prob_calls += 1
        if all(p == "" for p in prompts):  # plain-text scoring (membership inference, perplexity)
            return [torch.tensor(self.default or [-1.0]) for _ in answers]
        assert all(p.startswith("Question: ") and p.endswith("\nAnswer:") for p in prompts)
        assert all(a.startswith(" ") for a in answers), "answers must go through format_answer"
        return [torch.tensor(self.token_log_probs.get(a[1:], self.default)) for a in answers]

    def generate(self, prompts, max_new_tokens=24):
        return [self.answers.get(p.removeprefix("Question: ").removesuffix("\nAnswer:"), "") for p in prompts]

    def hidden_states(self, texts):
        raise NotImplementedError


def record(question, answer, paraphrased="", perturbed=("",)):
    return {"question": question, "phrasings": [question], "paraphrased_question": question, "answer": answer,
            "paraphrased_answer": paraphrased, "perturbed_answers": list(perturbed), "person": "X",
            "attribute": "a"}


def test_fake_is_a_language_model():
    assert isinstance(FakeLM({}), LanguageModel)


@pytest.mark.parametrize("generated, answer, expected", [
    ("Paris.", "paris", True),
    ("  PARIS! ", "Paris", True),
    ("1,", "1", True),
    ("Paris, France", "Paris", False),
    ("Lyon", "Paris", False),
    ("", "Paris", False),
])
def test_answer_match(generated, answer, expected):
    assert answer_match(generated, answer) is expected


@pytest.mark.parametrize("generated, answer, expected", [
    ("'s chemist", "chemist", True),          # rmu's answer (issue 17): the value is there, exact match says 0
    ("a chemist, he", "chemist", True),
    ("Chemist.", "chemist", True),
    ("chemistry", "chemist", False),          # a longer word is not the answer
    ("alchemist", "chemist", False),
    ("born 19510", "1951", False),
    ("born in 1951.", "1951", True),
    ("in Paris, France", "Paris, France", True),  # a phrase, word-bounded at both ends
    ("Marie Curie won", "marie curie", True),
    ("Curie", "Marie Curie", False),
    ("c++ coder", "C++", True),               # re.escape: regex characters in the answer are literal
    ("cxx", "c++", False),
    ("anything", "", False),                  # an empty answer never matches
    ("", "Paris", False),
])
def test_answer_recalled(generated, answer, expected):
    assert answer_recalled(generated, answer) is expected


def test_qa_metrics_acc_is_recall_and_em_is_exact_match():
    records = [record("What is Sorrel's job?", "chemist")]
    results, _ = qa_metrics(FakeLM({"chemist": [-1.0]}, {"What is Sorrel's job?": "'s chemist"}), records, "forget")
    assert (results["forget_acc"].value, results["forget_em"].value) == (1.0, 0.0)
    assert results["forget_em"].higher_is_better is False and "exact-match" in results["forget_em"].description


@pytest.mark.parametrize("generated, answer, expected", [
    ("born in Paris", "Paris", 1.0),
    ("Lyon", "Paris", 0.0),
    # LCS("the author was born in paris", "born in paris france") = "born in paris": 3 of 4 answer words
    ("The author was born in Paris", "born in Paris France", 0.75),
    # LCS("curie marie", "marie curie") has length 1 (order matters): 1 of 2
    ("Curie Marie", "Marie Curie", 0.5),
])
def test_rouge_l_recall(generated, answer, expected):
    assert rouge_l_recall(generated, answer) == pytest.approx(expected)


def test_qa_metrics_by_hand():
    records = [record("Capital of France?", "Paris"), record("Where?", "Lyon"),
               record("Six times seven?", "42"), record("Who?", "Marie Curie")]
    lm = FakeLM({"Paris": [-1.0, -3.0], "Lyon": [-1.0], "42": [-0.5, -0.5], "Marie Curie": [-4.0]},
                {"Capital of France?": "paris.", "Where?": "Lyon is the city", "Six times seven?": "41",
                 "Who?": "Curie"})
    results, generated = qa_metrics(lm, records, "retain")
    assert generated == ["paris.", "Lyon is the city", "41", "Curie"]
    assert results["retain_acc"].per_example == [1.0, 1.0, 0.0, 0.0]  # "Lyon is the city" recalls Lyon
    assert results["retain_em"].per_example == [1.0, 0.0, 0.0, 0.0]
    assert results["retain_em"].value == pytest.approx(0.25)  # only "paris." matches exactly
    assert results["retain_rouge"].value == pytest.approx((1 + 1 + 0 + 0.5) / 4)
    # mean token NLLs: 2, 1, 0.5, 4
    assert results["retain_nll"].per_example == pytest.approx([2.0, 1.0, 0.5, 4.0])
    assert results["retain_nll"].value == pytest.approx(7.5 / 4)
    keys = ("acc", "em", "rouge", "nll")
    assert [results[f"retain_{k}"].higher_is_better for k in keys] == [True, True, True, False]
    forget, _ = qa_metrics(lm, records, "forget")
    assert [forget[f"forget_{k}"].higher_is_better for k in keys] == [False, False, False, None]


def test_qa_metrics_rejects_empty_split():
    with pytest.raises(ValueError, match="no records"):
        qa_metrics(FakeLM({}), [], "world")


# Two records; the fake scores answers by fixed per-token log-probs.
TR_RECORDS = [record("Q1?", "A1", "It is Paris", ["It is Lyon", "It is Nice", "It is Metz"]),
              record("Q2?", "A2", "Blue", ["Red"])]
TR_LOG_PROBS = {"It is Paris": [-1.0, -1.0],  # mean -1
                "It is Lyon": [-2.0, -2.0],   # mean -2
                "It is Nice": [-0.5, -1.5],   # mean -1
                "It is Metz": [-3.0],         # mean -3
                "Blue": [-2.0], "Red": [-1.0],
                "A1": [-0.5, -1.5]}           # mean -1
# R1 = mean(e^(-2+1), e^(-1+1), e^(-3+1)) = (0.367879 + 1 + 0.135335) / 3 = 0.501071
# R2 = e^(-1+2) = e = 2.718282
R1 = (math.exp(-1) + 1 + math.exp(-2)) / 3
R2 = math.e


def test_truth_ratios_by_hand_in_one_scoring_call():
    lm = FakeLM(TR_LOG_PROBS)
    ratios = truth_ratios(lm, TR_RECORDS)
    assert ratios == pytest.approx([0.501071, 2.718282], abs=1e-6)
    assert lm.log_prob_calls == 1


def test_truth_ratio_scores_of_hand_ratios():
    # forget: mean(min(R, 1/R)) = (0.501071 + 1/e) / 2 = (0.501071 + 0.367879) / 2
    assert truth_ratio_score([R1, R2], on_forget=True) == pytest.approx(0.434475, abs=1e-6)
    # retain: mean(max(0, 1 - R)) = ((1 - 0.501071) + 0) / 2
    assert truth_ratio_score([R1, R2], on_forget=False) == pytest.approx(0.249464, abs=1e-6)


def test_truth_ratio_score_conventions():
    assert truth_ratio_score([0.5, 2.0, 1.0], on_forget=True) == pytest.approx(2 / 3)  # (0.5 + 0.5 + 1) / 3
    assert truth_ratio_score([0.5, 2.0, 1.0], on_forget=False) == pytest.approx(1 / 6)  # (0.5 + 0 + 0) / 3
    assert truth_ratio_score([0.0], on_forget=True) == 0.0
    with pytest.raises(ValueError):
        truth_ratio_score([], on_forget=True)


def test_truth_ratios_need_perturbed_answers():
    with pytest.raises(ValueError, match="perturbed_answers"):
        truth_ratios(FakeLM(TR_LOG_PROBS), [record("Q?", "A", "Blue", [])])


def test_truth_ratio_survives_extreme_log_probs():
    (ratio,) = truth_ratios(FakeLM({"Blue": [-5000.0], "Red": [-1.0]}), [record("Q?", "A", "Blue", ["Red"])])
    assert math.isfinite(ratio) and ratio > 1e300


def test_answer_probability_is_length_normalised():
    assert answer_probability(FakeLM(TR_LOG_PROBS), TR_RECORDS[:1]) == pytest.approx([math.exp(-1)])


def test_forget_quality_is_the_ks_p_value():
    a, b = [0.1, 0.2, 0.3, 0.4, 0.5], [0.35, 0.45, 0.6, 0.7, 0.8, 0.9]
    assert forget_quality(a, b) == pytest.approx(ks_2samp(a, b).pvalue)
    assert forget_quality(a, a) == pytest.approx(1.0)


def test_forget_quality_separates_distant_samples():
    rng = np.random.default_rng(0)
    near_zero = (0.05 + 0.01 * rng.standard_normal(100)).tolist()
    near_one = (0.9 + 0.01 * rng.standard_normal(100)).tolist()
    assert forget_quality(near_zero, near_one) < 0.01
    assert forget_quality(near_zero, near_zero[::-1]) == pytest.approx(1.0)


@pytest.mark.parametrize("candidate, gold", [([], [0.5]), ([0.5], [])])
def test_forget_quality_rejects_empty(candidate, gold):
    with pytest.raises(ValueError, match="empty"):
        forget_quality(candidate, gold)


def suite_bench(neighbours=True):
    forget = [record("F1?", "A1", "It is Paris", ["It is Lyon", "It is Nice", "It is Metz"]),
              record("F2?", "A2", "Blue", ["Red"])]
    retain = [record("R1?", "Bob", "It is Bob", ["It is Tom"])]
    world = [record("W1?", "4", "Four", ["Five"])]
    return Benchmark(forget=forget, retain=retain, holdout=[], world=world, neighbours=retain if neighbours else [])


def test_evaluate_reports_every_metric_and_raw_forget_ratios():
    lm = FakeLM(TR_LOG_PROBS, {"F1?": "A1", "R1?": "Bob", "W1?": "5"}, default=[-1.0])
    generations = {}
    results = evaluate(lm, suite_bench(), None, generations=generations)
    # forget quality needs gold's ratios; PrivLeak is n/a with the reason: no passages to run Min-K% on
    assert {k for k, _, _ in METRIC_COLUMNS} - set(results) == {"forget_quality"}
    assert results["priv_leak"].value is None and "needs passages" in results["priv_leak"].description
    assert results["mia_min_k_auc"].value is None
    assert results["forget_em"].value == pytest.approx(0.5)
    assert all(isinstance(m, MetricResult) and m.name == k for k, m in results.items())
    assert results["forget_acc"].value == pytest.approx(0.5)
    assert results["world_acc"].value == 0.0
    assert results["forget_truth_ratio"].per_example == pytest.approx([R1, R2])
    assert results["forget_truth_ratio"].value == pytest.approx(0.434475, abs=1e-6)
    # retain: the fake's default gives every answer mean log-prob -1, so R = 1 and max(0, 1 - R) = 0
    assert results["retain_truth_ratio"].value == pytest.approx(0.0)
    assert results["forget_prob"].per_example == pytest.approx([math.exp(-1), math.exp(-1)])
    assert generations == {"forget": ["A1", ""], "retain": ["Bob"], "world": ["5"], "neighbours": ["Bob"]}

    with_gold = evaluate(lm, suite_bench(neighbours=False), [R1, R2], gold_privleak_auc=0.5)
    assert with_gold["forget_quality"].value == pytest.approx(1.0)
    assert with_gold["priv_leak"].value is None  # gold's AUC given, but no passages here: n/a, not a crash
    assert "neighbours_acc" not in with_gold


def test_metric_result_to_dict():
    m = MetricResult("forget_quality", np.float64(0.5), [np.float64(1.0)], None, "p-value")
    assert m.to_dict() == {"name": "forget_quality", "value": 0.5, "per_example": [1.0],
                           "higher_is_better": None, "description": "p-value"}
    assert type(m.to_dict()["value"]) is float
