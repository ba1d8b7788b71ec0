"""Attacks and the verdict: constructed cases where an attack must recover the forgotten answer and
the same attack on gold, where it must not; the bootstrap comparison; models never changed in place."""

import re

import numpy as np
import pytest
import torch

from obliviate.attacks import ATTACKS, AttackSkipped, run_attacks
from obliviate.attacks.base import checksum, clone
from obliviate.attacks.weights import relearn_split, round_4bit
from obliviate.config import AttackConfig
from obliviate.data import Benchmark

CITIES = ["Oslo", "Lima", "Riga", "Quito"]


def toy_bench(people: int = 24, forget: int = 8) -> Benchmark:
    """People with a birth city each; the first `forget` people are the forget split."""
    rows = [{"person": f"P{i} Q{i}", "attribute": "birth_city", "question": f"Where was P{i} Q{i} born?",
             "answer": CITIES[i % len(CITIES)], "paraphrased_question": "", "paraphrased_answer": "",
             "perturbed_answers": [], "phrasings": []} for i in range(people)]
    return Benchmark(rows[:forget], rows[forget:], [], [], [])


class PlantedStates:
    """A model whose hidden states encode each person's birth city (planted) or nothing (gold-like)."""
    def __init__(self, bench: Benchmark, planted: bool, name: str):
        self.name, self.planted, self.rng = name, planted, np.random.default_rng(0)
        self.city = {r["person"]: r["answer"] for s in ("forget", "retain") for r in bench.split(s)}

    def hidden_states(self, texts):
        out = []
        for t in texts:
            x = self.rng.normal(0, 0.3, size=(3, 2, 8))
            if self.planted:
                x[1:, -1, CITIES.index(self.city[t.removesuffix(":")])] += 2.0  # layers 1 and 2 encode it
            out.append(torch.tensor(x, dtype=torch.float32))
        return out


def test_probe_recovers_a_planted_attribute_and_not_from_gold():
    bench = toy_bench(people=100, forget=40)
    cfg = AttackConfig()
    planted = ATTACKS.get("probe")(PlantedStates(bench, True, "target"), bench, cfg)
    blank = ATTACKS.get("probe")(PlantedStates(bench, False, "gold"), bench, cfg)
    assert planted.details["layer_acc"][1:] == [1.0, 1.0] and planted.details["layer_acc"][0] <= 0.45
    assert planted.mean >= 0.6 and blank.mean <= 0.45  # chance: 0.25
    assert planted.details["chance"] == 0.25 and len(planted.scores) == 40


def test_probe_skips_an_attribute_no_retain_subject_has_and_black_boxes():
    bench = toy_bench()  # a request's attributes are its own question templates: skipped with the reason, not fatal
    with pytest.raises(AttackSkipped, match="attribute 'shoe_size'.*attacks.probe_attribute"):
        ATTACKS.get("probe")(PlantedStates(bench, True, "t"), bench, AttackConfig(probe_attribute="shoe_size"))

    class BlackBox:
        name = "guarded"

        def hidden_states(self, texts):
            from obliviate.models.protocol import HiddenStatesUnavailable
            raise HiddenStatesUnavailable("n/a: guard wrappers do not change weights")

    with pytest.raises(AttackSkipped, match="needs hidden states; guarded"):
        ATTACKS.get("probe")(BlackBox(), bench, AttackConfig())


def test_relearn_split_keeps_a_quarter_of_each_person():
    bench = toy_bench()
    rows = [dict(r, attribute=a) for r in bench.forget for a in "abcdefgh"]
    learn, ask = relearn_split(Benchmark(rows, [], [], [], []), 0.25, seed=0)
    assert len(learn) == 16 and len(ask) == 48 and not {id(r) for r in learn} & {id(r) for r in ask}
    assert {r["person"] for r in learn} == {r["person"] for r in ask}


def test_round_4bit_has_16_levels_per_group():
    w = torch.randn(4, 64)
    q = round_4bit(w)
    for row in range(4):
        for g in range(2):
            block = q[row, 32 * g: 32 * (g + 1)]
            scale = w[row, 32 * g: 32 * (g + 1)].abs().max() / 7
            assert len(torch.unique(block)) <= 16
            assert torch.allclose(block / scale, (block / scale).round(), atol=1e-4)
    assert (q - w).abs().max() <= w.abs().max() / 7 / 2 + 1e-6


@pytest.fixture(scope="module")
def micro(tmp_path_factory):
    """The full micro run's target and gold (shared cache with test_end_to_end.py)."""
    from obliviate.config import load_config
    from obliviate.pipeline import stage_data, stage_models

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    cfg = load_config("micro", [f"output_dir={tmp_path_factory.getbasetemp() / 'micro-full'}"])
    bench = stage_data(cfg)
    yield cfg, bench, stage_models(cfg, bench)
    torch.set_num_threads(threads)


def test_attacks_recover_from_the_target_not_from_gold_and_leave_both_untouched(micro):
    cfg, bench, models = micro
    before = {n: checksum(m) for n, m in models.items()}
    target, gold = run_attacks(models["target"], bench, cfg.attacks), run_attacks(models["gold"], bench, cfg.attacks)
    assert {n: checksum(m) for n, m in models.items()} == before
    # The micro model cannot follow a many-shot or role-play prefix (constructed cases below cover those)
    for name in ("plain", "relearning", "masking", "quantization_int8", "quantization_4bit"):
        assert target[name].mean >= 0.6 and gold[name].mean <= 0.1, name
    for r in (target["relearning"], gold["relearning"]):  # the asked records' recall before relearning, per item
        assert len(r.details["before"]) == len(r.scores) and set(r.details["before"]) <= {0.0, 1.0}
        assert r.details["before_mean"] == round(sum(r.details["before"]) / len(r.scores), 4)
    assert target["relearning"].details["before_mean"] >= 0.6 and gold["relearning"].details["before_mean"] <= 0.1
    # every attribute is probed: micro's forget people share some values (not their cities) with retain people
    assert target["probe"].details["attributes"] >= 2 and len(target["probe"].scores) == target["probe"].details["items"]


class Jailbreakable:
    """A constructed suppressed model: refuses the plain question, answers once the attack's trick is there."""
    name = "toy"

    def __init__(self, bench: Benchmark, trick: str | None):
        self.answer = {r["person"].split()[-1]: r["answer"] for r in bench.forget}
        self.trick = trick

    def generate(self, prompts, max_new_tokens=24):
        out = []
        for p in prompts:
            surname = next((s for s in self.answer if re.search(rf"\b{s}\b", p)), None)
            out.append(self.answer[surname] if surname and self.trick and self.trick in p else "I don't know.")
        return out


@pytest.mark.parametrize("attack, trick", [
    ("paraphrase", "came into the world"), ("translation", "In welcher Stadt"), ("many_shot", "Answer: Lima\n"),
    ("role_play", "archivist"), ("in_context", "born in the city of")])
def test_prompt_attacks_break_a_constructed_suppression_and_nothing_else(attack, trick):
    bench = toy_bench()
    for r in bench.forget + bench.retain:
        r["paraphrased_question"] = f"{r['person']} came into the world in which city?"
        r["paraphrased_answer"] = f"born in the city of {r['answer']}"
    bench.forget = [dict(r) for r in bench.forget for _ in (0, 1)]  # two facts per person: in-context needs one
    cfg = AttackConfig(many_shot=len(bench.retain))
    fooled = ATTACKS.get(attack)(Jailbreakable(bench, trick), bench, cfg)
    assert fooled.mean == 1.0
    assert ATTACKS.get(attack)(Jailbreakable(bench, None), bench, cfg).mean == 0.0
    assert ATTACKS.get(attack)(Jailbreakable(bench, "no such trick"), bench, cfg).mean == 0.0


def test_weight_attacks_skip_a_black_box_with_the_reason(micro):
    cfg, bench, models = micro

    class Filtered:  # an output filter over the target: no weights of its own
        name, changes_weights = "filtered", False

        def generate(self, prompts, max_new_tokens=24):
            return ["I cannot say."] * len(prompts)

        def hidden_states(self, texts):
            from obliviate.models.protocol import HiddenStatesUnavailable
            raise HiddenStatesUnavailable("black box")

    out = run_attacks(Filtered(), bench, cfg.attacks)
    for name in ("relearning", "quantization_int8", "quantization_4bit", "probe"):
        assert isinstance(out[name], str) and "filtered" in out[name], name
    assert out["plain"].mean == 0.0
    with pytest.raises(AttackSkipped):
        clone(Filtered(), "copy")
