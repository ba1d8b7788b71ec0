"""The weight-space methods of issue 5 on a quickly trained micro model: each runs, changes the
weights it should and only those, leaves the target untouched, and forgets in the right direction."""

import math

import pytest
import torch

from obliviate.config import load_config
from obliviate.data import format_answer, format_prompt
from obliviate.errors import ObliviateError
from obliviate.methods import METHODS
from obliviate.methods.weight_space.idk import REFUSALS, split_record
from obliviate.pipeline import stage_data, stage_models

# A few steps each at a rate that moves a 0.2 M-parameter model visibly.
FAST = {"steps": 4, "batch_size": 8, "lr": 5e-3, "warmup": 0.0}
RUNS = {
    "kl": FAST, "npo": FAST, "npo_rt": FAST, "npo_kl": FAST, "simnpo": FAST, "idk": FAST,
    "rmu": FAST | {"steering_coeff": 5.0},
    "task_vector": {"reinforce_steps": 4, "reinforce_lr": 5e-3, "batch_size": 8, "warmup": 0.0, "alpha": 2.0},
    "iau": {"lr": 5e-3},  # one full-set step, as in the paper
    "undial": FAST | {"gamma": 10.0}, "uniform_choice": FAST,
}


@pytest.fixture(scope="module")
def micro(tmp_path_factory):
    # 8 epochs instead of micro's 40: the methods need a trained model, not a perfect memoriser (~15 s)
    cfg = load_config("micro", [f"output_dir={tmp_path_factory.mktemp('runs')}", "train.epochs=8"])
    bench = stage_data(cfg)
    return bench, stage_models(cfg, bench, ("target",))["target"]


def snapshot(lm) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in lm.model.state_dict().items()}


def changed(before: dict, lm) -> set[str]:
    return {k for k, v in lm.model.state_dict().items() if not torch.equal(before[k], v)}


def forget_nll(lm, bench) -> float:
    lps = lm.log_probs([format_prompt(r["question"]) for r in bench.forget],
                       [format_answer(r["answer"]) for r in bench.forget])
    return sum(-lp.mean().item() for lp in lps) / len(lps)


def run(name, bench, target, **args):
    method = METHODS.get(name)(METHODS.get(name).config_class(**args))
    return method, method.unlearn(target, bench, seed=0)


@pytest.fixture(scope="module")
def results(micro):
    bench, target = micro
    before = snapshot(target)
    out = {name: run(name, bench, target, **args) for name, args in RUNS.items()}
    return before, out


def test_every_new_method_is_registered():
    assert set(RUNS) <= set(METHODS.names())


@pytest.mark.parametrize("name", RUNS)
def test_method_returns_new_weights_and_leaves_target_untouched(name, micro, results):
    bench, target = micro
    before, out = results
    method, model = out[name]
    assert model is not target and model.model is not target.model
    assert changed(before, target) == set()  # every run so far left the target as it was
    assert changed(before, model), f"{name} changed no weight"
    steps = RUNS[name].get("steps", RUNS[name].get("reinforce_steps", 1))
    assert len(method.losses) == steps and all(math.isfinite(x) for x in method.losses)
    assert method.facts()["steps"] == steps


@pytest.mark.parametrize("name", RUNS)
def test_forget_nll_rises(name, micro, results):
    bench, target = micro
    model = results[1][name][1]
    assert forget_nll(model, bench) > forget_nll(target, bench) + 0.05


def test_idk_makes_refusals_likelier_on_forget_questions(micro, results):
    bench, target = micro
    model = results[1]["idk"][1]
    prompts = [format_prompt(r["question"]) for r in bench.forget]

    def refusal_lp(lm):
        return sum(lp.sum().item() for lp in lm.log_probs(prompts, [REFUSALS[0]] * len(prompts))) / len(prompts)

    assert refusal_lp(model) > refusal_lp(target) + 1.0


def test_idk_gives_prompt_less_biographies_their_name_as_prompt(micro):
    bench, _ = micro
    ex = METHODS.get("idk")().examples(bench)
    assert len(ex["refusal"]) == len(ex["forget"])
    assert all(p == q and r in REFUSALS for (p, _), (q, r) in zip(ex["forget"], ex["refusal"]))
    bio = bench.bios_of("forget")[0]
    name = bio["text"].split(":")[0]
    assert split_record("", bio["text"]) == (name + ":", bio["text"][len(name) + 1:])
    assert (name + ":", bio["text"][len(name) + 1:]) in ex["forget"]
    assert split_record("Question: Q?\nAnswer:", " A") == ("Question: Q?\nAnswer:", " A")


def test_rmu_changes_only_the_chosen_mlp_weights(micro):
    bench, target = micro
    method, model = run("rmu", bench, target, **FAST, layer=1, update_layers=[1], projections=["down_proj"])
    before = snapshot(target)
    assert changed(before, model) == {"model.layers.1.mlp.down_proj.weight"}
    assert method.lora_targets(target.model) == ["model.layers.1.mlp.down_proj"]
    assert METHODS.get("rmu")().chosen_layers(target.model) == (1, [0, 1])  # middle of 2 layers; ℓ−2..ℓ clipped


def test_rmu_lora_adapters_sit_on_the_chosen_mlp_only(micro):
    bench, target = micro
    args = FAST | {"layer": 1, "update_layers": [1], "projections": ["down_proj"], "lora": {"r": 2}}
    method, model = run("rmu", bench, target, **args)
    assert changed(snapshot(target), model) == {"model.layers.1.mlp.down_proj.weight"}  # merged adapter


@pytest.mark.parametrize("args, key", [({"layer": 2}, "method_args.rmu.layer=2"), ({"layer": -1}, "layer=-1"),
                                       ({"update_layers": [0, 5]}, "method_args.rmu.update_layers=[0, 5]")])
def test_rmu_layer_outside_the_model_raises_and_leaves_target_untouched(micro, args, key):
    bench, target = micro
    before = snapshot(target)
    with pytest.raises(ObliviateError, match=r"0\.\.1") as err:
        run("rmu", bench, target, **args)
    assert key in str(err.value)
    assert changed(before, target) == set()


def test_task_vector_with_alpha_zero_returns_the_target_weights(micro):
    bench, target = micro
    method, model = run("task_vector", bench, target, reinforce_steps=2, batch_size=8, alpha=0.0)
    assert method.losses and changed(snapshot(target), model) == set()


def test_task_vector_refuses_unmerged_lora_before_training(micro):
    bench, target = micro
    with pytest.raises(ObliviateError, match="lora.merge=true"):
        run("task_vector", bench, target, lora={"r": 2, "merge": False})


def test_task_vector_steps_mirror_reinforce_steps():
    cls = METHODS.get("task_vector").config_class
    c = cls(reinforce_steps=7, reinforce_lr=0.01)
    assert (c.steps, c.lr) == (7, 0.01) and cls(**c.model_dump()) == c
    with pytest.raises(ValueError, match="reinforce_steps"):
        cls(steps=3)


def test_uniform_choice_needs_perturbed_answers_and_pairs_every_phrasing_with_each(micro):
    from dataclasses import replace

    bench, target = micro
    method = METHODS.get("uniform_choice")()
    ex = method.examples(bench)
    r = bench.forget[0]
    assert len(ex["forget"]) == len(ex["alternate"]) == sum(len(x["phrasings"]) * len(x["perturbed_answers"])
                                                            for x in bench.forget)
    first = [(p, a) for (p, t), (_, a) in zip(ex["forget"], ex["alternate"]) if p == format_prompt(r["phrasings"][0])]
    assert [a for _, a in first] == [format_answer(x) for x in r["perturbed_answers"]]
    bare = replace(bench, forget=[dict(x, perturbed_answers=[]) for x in bench.forget])
    with pytest.raises(ObliviateError, match="perturbed_answers"):
        method.unlearn(target, bare, seed=0)


def test_uniform_choice_choice_weight_pairs_retain_answers_and_trains(micro):
    bench, target = micro
    method = METHODS.get("uniform_choice")(METHODS.get("uniform_choice").config_class(**FAST, choice_weight=5.0))
    ex = method.examples(bench)
    assert len(ex["kept"]) == len(ex["kept_alternate"]) == len(ex["forget"])  # sampled at forget's indices
    retain = {format_prompt(p): r for r in bench.retain for p in r["phrasings"]}
    for (p, a), (p2, alt) in zip(ex["kept"][:20], ex["kept_alternate"][:20]):
        assert p == p2 and a == format_answer(retain[p]["answer"])
        assert alt in [format_answer(x) for x in retain[p]["perturbed_answers"]]
    before = snapshot(target)
    model = method.unlearn(target, bench, seed=0)
    assert changed(before, model) and not changed(before, target)
