from pathlib import Path

import pytest
import torch

from obliviate.data import DataConfig, build_benchmark, format_answer, format_prompt
from obliviate.data.loaders import load_choices
from obliviate.evals import evaluate
from obliviate.evals.multiple_choice import (choice_accuracy, choice_log_likelihoods, choice_sets,
                                             multiple_choice_metric, world_choice_questions)
from obliviate.models.hf import HFLanguageModel
from obliviate.models.settings import TinyModelConfig
from obliviate.models.tiny import build_tiny_model
from obliviate.models.tokenizer import train_tokenizer

FIX = Path(__file__).parent / "fixtures"


class LengthScorer:
    """A model whose log p of an answer is minus its length in characters: it prefers short answers."""

    name = "length"

    def log_probs(self, prompts, answers):
        return [torch.tensor([-float(len(a))]) for a in answers]


def test_world_choices_are_well_formed_and_seeded():
    qs = world_choice_questions()
    assert len(qs) == 100 and qs == world_choice_questions()
    france = next(q for q in qs if q["question"] == "What is the capital of France?")
    assert france["choices"][france["answer"]] == "Paris"
    assert all(len(set(q["choices"])) == 4 for q in qs)
    sums = [q for q in qs if "plus" in q["question"]]
    a, b = map(int, sums[0]["question"].removeprefix("What is ").removesuffix("?").split(" plus "))
    assert sums[0]["choices"][sums[0]["answer"]] == str(a + b)
    assert len(world_choice_questions(per_kind=5)) == 15
    assert world_choice_questions(seed=1) != qs


def test_accuracy_is_argmax_of_choice_likelihood():
    qs = [{"question": "q", "choices": ["long answer", "a", "mid"], "answer": 1},
          {"question": "q", "choices": ["aa", "b"], "answer": 0},
          {"question": "q", "choices": ["x", "y"], "answer": 0}]  # a tie goes to the first choice
    assert choice_accuracy(LengthScorer(), qs) == [1.0, 0.0, 1.0]
    m = multiple_choice_metric(LengthScorer(), qs, "mc_acc")
    assert m.value == pytest.approx(2 / 3) and m.higher_is_better is True and "chance 0.44" in m.description


def test_choice_scores_sum_the_models_answer_log_probs():
    texts = [format_prompt("What is the capital of France?") + format_answer(c) for c in ("Paris", "Rome", "Oslo")]
    tok = train_tokenizer(texts * 4, 300)
    cfg = TinyModelConfig(vocab_size=300, hidden_size=16, intermediate_size=32, layers=1, heads=2)
    lm = HFLanguageModel(build_tiny_model(cfg, tok, seed=0), tok)
    q = {"question": "What is the capital of France?", "choices": ["Paris", "Rome", "Oslo"], "answer": 0}
    (scores,) = choice_log_likelihoods(lm, [q])
    direct = [lp.sum().item() for lp in lm.log_probs([format_prompt(q["question"])] * 3,
                                                     [format_answer(c) for c in q["choices"]])]
    assert scores == pytest.approx(direct)
    assert choice_accuracy(lm, [q]) == [float(max(range(3), key=direct.__getitem__) == 0)]
    bench = build_benchmark(DataConfig(people=4, holdout_people=2, world_sums=2, forget_fraction=0.25))
    results = evaluate(lm, bench, choices=choice_sets(world_per_kind=3))
    assert results["world_mc_acc"].value == pytest.approx(
        sum(choice_accuracy(lm, world_choice_questions(3))) / 9)


def test_choice_sets_from_files():
    sets = choice_sets(0, {"wmdp_bio": str(FIX / "wmdp" / "wmdp-bio.json")}, {"mmlu": str(FIX / "wmdp" / "wmdp-bio.json")})
    assert list(sets) == ["mc_wmdp_bio_acc", "mc_mmlu_acc"]
    assert sets["mc_wmdp_bio_acc"][1] is False and sets["mc_mmlu_acc"][1] is True
    assert sets["mc_wmdp_bio_acc"][0] == load_choices(FIX / "wmdp" / "wmdp-bio.json")
    assert list(choice_sets()) == ["world_mc_acc"]


@pytest.mark.slow
def test_smollm2_knows_world_choices_and_wmdp_fixture():
    from obliviate.models.load import load_language_model

    lm = load_language_model("smollm2-135m-instruct")
    acc = choice_accuracy(lm, world_choice_questions(per_kind=10))
    assert sum(acc[:10]) >= 8  # capitals: a pretrained model knows them, chance is 2.5 of 10
    assert sum(acc) / len(acc) >= 0.5
