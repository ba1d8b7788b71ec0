"""MUSE VerbMem, TOFU model utility, world perplexity and degenerate answers, by hand through fakes."""

import math

import pytest
import torch

from obliviate.data import Benchmark
from obliviate.evals.muse import verbmem
from obliviate.evals.utility import (UTILITY_PARTS, degenerate_share, harmonic_mean, is_degenerate, model_utility,
                                     option_probabilities, world_perplexity)

BIO = "Sorrel Foxley was born in the city of Tallinn in 1951 and works as a mathematician."
# first 8 words: "Sorrel Foxley was born in the city of"; the rest:
REST = "Tallinn in 1951 and works as a mathematician."


class GenFake:
    """Greedy generations looked up by prompt; records what it was asked."""

    name = "gen-fake"

    def __init__(self, continuations):
        self.continuations, self.prompts, self.max_new_tokens = continuations, [], None

    def generate(self, prompts, max_new_tokens=24):
        self.prompts += prompts
        self.max_new_tokens = max_new_tokens
        return [self.continuations.get(p, "") for p in prompts]

    def log_probs(self, prompts, answers):
        raise NotImplementedError

    def hidden_states(self, texts):
        raise NotImplementedError


def bio_bench(*bios):
    return Benchmark(forget=[], retain=[], holdout=[], world=[], neighbours=[], bios=list(bios))


def test_verbmem_exact_continuation_scores_one():
    lm = GenFake({"Sorrel Foxley was born in the city of": REST})
    bench = bio_bench({"person": "S", "split": "forget", "text": BIO},
                      {"person": "R", "split": "retain", "text": "Other person text that is not asked about at all."})
    m = verbmem(lm, bench, prefix_words=8)
    assert lm.prompts == ["Sorrel Foxley was born in the city of"]  # plain words, no Question/Answer format
    assert lm.max_new_tokens == 128
    assert (m.name, m.value, m.per_example, m.higher_is_better) == ("verbmem_forget", 1.0, [1.0], False)


def test_verbmem_wrong_continuation_by_hand():
    # reference words (rouge-score drops punctuation, lower-cases):
    #   tallinn in 1951 and works as a mathematician   (8 words)
    # generation: oslo in 1951 and sails                (5 words)
    # LCS = "in 1951 and" = 3 -> P = 3/5, R = 3/8, F1 = 2PR / (P + R) = 2 * 0.6 * 0.375 / 0.975 = 0.461538
    lm = GenFake({"Sorrel Foxley was born in the city of": "Oslo in 1951 and sails."})
    m = verbmem(lm, bio_bench({"person": "S", "split": "forget", "text": BIO}), prefix_words=8, max_new_tokens=32)
    assert m.value == pytest.approx(0.45 / 0.975)
    assert lm.max_new_tokens == 32


def test_verbmem_other_split_and_short_or_missing_bios():
    bench = bio_bench({"person": "R", "split": "retain", "text": BIO},
                      {"person": "T", "split": "retain", "text": "Too short."})
    m = verbmem(GenFake({}), bench, split="retain", prefix_words=8)
    assert m.name == "verbmem_retain" and m.higher_is_better is True
    assert m.per_example == [0.0]  # the short bio has no continuation and is skipped
    none = verbmem(GenFake({}), bench, split="forget")
    assert none.value is None and none.description.startswith("n/a")


# --- model utility ----------------------------------------------------------------------------

def qa(question, answer, paraphrased, perturbed):
    return {"question": question, "answer": answer, "paraphrased_answer": paraphrased,
            "perturbed_answers": perturbed, "phrasings": [question], "person": None, "attribute": "a"}


RETAIN = [qa("R1?", "Bob Smith", "It is Bob", ["It is Tom"])]
WORLD = [qa("W1?", "4", "Four", ["Five", "Six"])]
LOG_PROBS = {"Bob Smith": [-1.0, -1.0],   # mean -1: P = e^-1
             "It is Bob": [-1.0], "It is Tom": [-2.0],
             "Four": [-0.5], "Five": [-1.5], "Six": [-2.5], "4": [-3.0]}


class QAFake:
    """Per-token log-probs by answer; generations by question; plain texts by a table."""

    name = "qa-fake"

    def __init__(self, answers, texts=None):
        self.answers, self.texts, self.scoring_calls = answers, texts or {}, 0

    def log_probs(self, prompts, answers):
        self.scoring_calls += 1
        return [torch.tensor(self.texts[a] if p == "" else LOG_PROBS[a[1:]]) for p, a in zip(prompts, answers)]

    def generate(self, prompts, max_new_tokens=24):
        return [self.answers[p.removeprefix("Question: ").removesuffix("\nAnswer:")] for p in prompts]

    def hidden_states(self, texts):
        raise NotImplementedError


# The six parts by hand:
#   retain_prob  = exp(mean(-1, -1))                          = e^-1              = 0.367879
#   retain_rouge = recall of "Bob" against "Bob Smith"        = 1/2               = 0.5
#   retain_truth = max(0, 1 - R), R = e^(-2 - -1) = e^-1      = 1 - 0.367879      = 0.632121
#   world_prob   = e^-0.5 / (e^-0.5 + e^-1.5 + e^-2.5)       = 1 / (1 + e^-1 + e^-2) = 0.665241
#   world_rouge  = recall of "4" against "4"                  = 1.0
#   world_truth  = 1 - mean(e^-1, e^-2) = 1 - 0.251607        = 0.748393
PARTS = [0.367879, 0.5, 0.632121, 0.665241, 1.0, 0.748393]
# harmonic mean = 6 / (2.718282 + 2 + 1.581977 + 1.503215 + 1 + 1.336198) = 6 / 10.139672 = 0.591735
UTILITY = 0.591735


def utility_bench():
    return Benchmark(forget=[], retain=RETAIN, holdout=[], world=WORLD, neighbours=[])


def test_model_utility_by_hand():
    m = model_utility(QAFake({"R1?": "Bob", "W1?": "4"}), utility_bench())
    assert m.name == "model_utility" and m.higher_is_better is True
    assert len(m.per_example) == len(UTILITY_PARTS) == 6
    assert m.per_example == pytest.approx(PARTS, abs=1e-6)
    assert m.value == pytest.approx(UTILITY, abs=1e-6)
    assert harmonic_mean(PARTS) == pytest.approx(UTILITY, abs=1e-6)


def test_model_utility_zero_component_is_zero():
    m = model_utility(QAFake({"R1?": "Bob", "W1?": "5"}), utility_bench())  # world ROUGE 0
    assert m.per_example[UTILITY_PARTS.index("world_rouge")] == 0.0
    assert m.value == 0.0


def test_model_utility_uses_precomputed_pieces():
    class NoGenerate(QAFake):
        def generate(self, prompts, max_new_tokens=24):
            raise AssertionError("rouge was given: no generation needed")

    lm = NoGenerate({})
    world_ratios = [(math.exp(-1) + math.exp(-2)) / 2]
    m = model_utility(lm, utility_bench(), {"retain": 0.5, "world": 1.0}, [math.exp(-1)],
                      world_ratios=world_ratios, retain_nll=[1.0])
    assert lm.scoring_calls == 0
    assert m.value == pytest.approx(UTILITY, abs=1e-6)
    # without world_ratios: one scoring call gives both the world truth ratios and the option probability
    m = model_utility(lm, utility_bench(), {"retain": 0.5, "world": 1.0}, [math.exp(-1)], retain_nll=[1.0])
    assert lm.scoring_calls == 1 and m.value == pytest.approx(UTILITY, abs=1e-6)


def test_option_probability_from_ratio():
    # 1 / (1 + n R) with n = 2, R = 0.25 -> 1 / 1.5
    assert option_probabilities(WORLD, [0.25]) == pytest.approx([2 / 3])


def test_model_utility_needs_retain_and_world():
    with pytest.raises(ValueError, match="world"):
        model_utility(QAFake({}), Benchmark(forget=[], retain=RETAIN, holdout=[], world=[], neighbours=[]))


# --- fluency ----------------------------------------------------------------------------------

def test_world_perplexity_by_hand():
    bench = Benchmark(forget=[], retain=[], holdout=[], neighbours=[],
                      world=[qa("W1?", "4", "", [""]), qa("W2?", "Paris", "", [""])])

    class AnswerFake(QAFake):
        def log_probs(self, prompts, answers):
            assert prompts == ["Question: W1?\nAnswer:", "Question: W2?\nAnswer:"]  # answers given questions
            return [torch.tensor({" 4": [-1.0, -2.0, -3.0], " Paris": [-0.5]}[a]) for a in answers]

    m = world_perplexity(AnswerFake({}), bench)
    # total NLL = 6 + 0.5 = 6.5 over 4 tokens: exp(1.625) = 5.078419
    assert m.value == pytest.approx(5.078419, abs=1e-6)
    assert m.per_example == pytest.approx([math.exp(2.0), math.exp(0.5)])  # each answer: exp(mean NLL)
    assert m.higher_is_better is False and m.name == "world_perplexity"


@pytest.mark.parametrize("text, expected", [
    ("Paris", False),
    ("born in the city of Tallinn", False),
    ("I don't know.", False),
    ("1987", False),
    ("Mississippi", False),
    ("", True),
    ("   \n ", True),
    ("the the the", True),
    ("No, no, no.", True),             # compared without case and punctuation
    ("Paris Paris London Paris", True),  # 3 of 4 words: 75 % >= 60 %
    ("Paris London Paris Rome", False),  # 2 of 4: 50 %
    ("aaaaaaa", True),
    ("... !!! ???", True),             # no letter or digit
    ("Par\ufffdis", True),
])
def test_is_degenerate(text, expected):
    assert is_degenerate(text) is expected


def test_degenerate_share():
    m = degenerate_share(["Paris", "", "the the the", "I don't know"])
    assert (m.name, m.value, m.per_example, m.higher_is_better) == ("degenerate_share", 0.5, [0, 1, 1, 0], False)
    assert degenerate_share([]).value is None
