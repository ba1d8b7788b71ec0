"""The shared unlearning loop's infrastructure on `micro`: LoRA (merged and kept), early stopping at
the gold level, and bad input that stops with a clear message and leaves the target untouched."""

import dataclasses

import pytest
import torch
from peft import PeftModel
from safetensors.torch import load_file
from transformers import AutoModelForCausalLM

from obliviate.config import load_config
from obliviate.errors import ObliviateError
from obliviate.methods import METHODS, Unlearner
from obliviate.methods.base import slice_accuracy, validation_slice
from obliviate.pipeline import method_dir, stage_data, stage_models, stage_unlearn

# A few epochs are enough: these tests check mechanics, not how well micro memorises.
MICRO = ["train.epochs=3"]
GD = "method_args.gradient_difference."


@pytest.fixture(scope="module")
def micro(tmp_path_factory):
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # a 0.2 M-parameter model: a second thread only adds contention
    out = tmp_path_factory.getbasetemp() / "micro-infra"  # shared with test_distributed.py
    cfg = load_config("micro", [f"output_dir={out}", *MICRO])
    bench = stage_data(cfg)
    yield out, bench, stage_models(cfg, bench)
    torch.set_num_threads(threads)


def config(micro, *sets):
    return load_config("micro", [f"output_dir={micro[0]}", *MICRO, *sets])


def state(model):
    return {k: v.clone() for k, v in model.state_dict().items()}


def max_change(a: dict, b: dict) -> float:
    return max((a[k] - b[k]).abs().max().item() for k in a)


def logits(model, ids=torch.tensor([[1, 5, 9, 13, 17, 21]])):
    with torch.no_grad():
        return model(input_ids=ids).logits


def gd(micro, *sets):
    cfg = config(micro, f"{GD}steps=10", f"{GD}eval_every=0", *sets)
    return METHODS.get("gradient_difference")(cfg.method_config("gradient_difference"))


# --- LoRA ---------------------------------------------------------------------------------------

def test_lora_merged_is_a_plain_model_that_transformers_loads(micro, tmp_path):
    _, bench, models = micro
    target = models["target"]
    before = state(target.model)
    out = gd(micro, "lora.r=4").unlearn(target, bench, seed=0)
    assert type(out.model).__name__ == "LlamaForCausalLM"  # merged: no peft wrapper left
    # trainable again, as a loaded model is: the relearning attack fine-tunes the result
    assert all(p.requires_grad for p in out.model.parameters())
    assert max_change(state(out.model), before) > 1e-3  # the adapters moved the weights
    assert max_change(state(target.model), before) == 0  # the input model is untouched
    out.save(tmp_path)
    assert not (tmp_path / "adapter_config.json").exists()
    loaded = AutoModelForCausalLM.from_pretrained(tmp_path)
    assert torch.allclose(logits(loaded), logits(out.model), atol=1e-5)


def test_lora_kept_adapter_saves_base_and_adapter(micro, tmp_path):
    _, bench, models = micro
    target = models["target"]
    out = gd(micro, "lora.r=4", "lora.merge=false").unlearn(target, bench, seed=0)
    assert isinstance(out.model, PeftModel)
    expected = logits(out.model)
    out.save(tmp_path)
    assert (tmp_path / "adapter_config.json").is_file() and (tmp_path / "config.json").is_file()
    # transformers loads base plus adapter from the one directory ...
    assert torch.allclose(logits(AutoModelForCausalLM.from_pretrained(tmp_path)), expected, atol=1e-5)
    # ... whose base weights are the target's, so peft can apply the adapter to the target itself
    base = load_file(tmp_path / "model.safetensors")
    assert max_change(base, {k: v for k, v in state(target.model).items() if k in base}) == 0
    fresh = AutoModelForCausalLM.from_pretrained(models_path(micro) / "target")
    assert torch.allclose(logits(PeftModel.from_pretrained(fresh, tmp_path)), expected, atol=1e-5)
    assert not torch.allclose(logits(target.model), expected, atol=1e-3)


def models_path(micro):
    from obliviate.pipeline import models_dir

    return models_dir(config(micro))


def test_lora_targets_hook_and_lora_active(micro):
    _, bench, models = micro
    seen = {}

    class OneLayer(METHODS.get("gradient_difference")):
        def lora_targets(self, model):
            return ["model.layers.1.mlp.down_proj"]

        def setup(self, model, target, bench):
            seen["active"] = self.lora_active
            seen["trainable"] = sorted(n for n, p in model.named_parameters() if p.requires_grad)

    cfg = config(micro, f"{GD}steps=2", f"{GD}eval_every=0", f"{GD}lora.r=2")
    OneLayer(cfg.method_config("gradient_difference")).unlearn(models["target"], bench)
    assert seen["active"] is True
    assert seen["trainable"] == ["base_model.model.model.layers.1.mlp.down_proj.lora_A.default.weight",
                                 "base_model.model.model.layers.1.mlp.down_proj.lora_B.default.weight"]


def test_run_level_lora_reaches_methods_and_the_cache_key(micro):
    plain, lora = config(micro), config(micro, "lora.r=8")
    assert lora.method_config("gradient_difference").lora.r == 8
    assert lora.method_config("gradient_difference").lora.alpha is None  # 2 * r when attached
    assert config(micro, "lora.r=8", f"{GD}lora.r=2").method_config("gradient_difference").lora.r == 2
    assert config(micro, "lora.r=8", f"{GD}lora=null").method_config("gradient_difference").lora is None
    assert method_dir(plain, "gradient_difference") != method_dir(lora, "gradient_difference")
    assert method_dir(lora, "gradient_difference") != method_dir(config(micro, "lora.r=4"), "gradient_difference")


def test_lora_on_a_method_without_lora_support_is_refused():
    class OwnLoop(Unlearner):
        name = "own_loop"
        supports_lora = False

        def unlearn(self, target, bench, seed=0):
            return target

    cfg = OwnLoop.config_class(lora={"r": 4})
    with pytest.raises(ObliviateError, match="own_loop.*does not support LoRA.*lora=null"):
        OwnLoop(cfg)


# --- early stopping -----------------------------------------------------------------------------

def test_early_stop_at_a_generous_gold_level_stops_at_the_first_check(micro):
    _, bench, models = micro
    method = gd(micro, f"{GD}steps=40", f"{GD}eval_every=5")
    method.unlearn(models["target"], bench, seed=0, stop_at=1.0)
    facts = method.facts()
    assert facts["steps"] == 5 and facts["budget"] == 40 and facts["stopped"] == "gold level"
    assert [c["step"] for c in facts["checks"]] == [5]


def test_an_unreachable_gold_level_runs_the_whole_budget(micro):
    _, bench, models = micro
    method = gd(micro, f"{GD}steps=12", f"{GD}eval_every=4")
    method.unlearn(models["target"], bench, seed=0, stop_at=-1.0)
    facts = method.facts()
    assert facts["steps"] == 12 and facts["stopped"] == "budget"
    assert [c["step"] for c in facts["checks"]] == [4, 8, 12]
    assert all(0 <= c["forget_slice_acc"] <= 1 for c in facts["checks"])


def test_stage_unlearn_stops_at_the_gold_models_slice_accuracy(micro):
    _, bench, models = micro
    cfg = config(micro, f"{GD}steps=6", f"{GD}eval_every=3")
    _, facts = stage_unlearn(cfg, "gradient_difference", models["target"], bench, models["gold"])
    slice_ = validation_slice(bench, 32)
    assert len(slice_) == min(32, len(bench.forget)) and slice_ == validation_slice(bench, 32)  # fixed
    assert facts["gold_slice_acc"] == slice_accuracy(models["gold"], slice_)
    assert facts["steps"] in (3, 6) and facts["stopped"] in ("gold level", "budget")
    _, cached = stage_unlearn(cfg, "gradient_difference", models["target"], bench, models["gold"])
    assert cached == facts  # the report's record comes back from the cache


# --- bad input ----------------------------------------------------------------------------------

def test_empty_forget_split_stops_and_leaves_target(micro):
    _, bench, models = micro
    before = state(models["target"].model)
    empty = dataclasses.replace(bench, forget=[], bios=[b for b in bench.bios if b["split"] != "forget"])
    with pytest.raises(ObliviateError, match="gradient_difference.*forget split has no examples"):
        gd(micro).unlearn(models["target"], empty)
    assert max_change(state(models["target"].model), before) == 0


@pytest.mark.parametrize("override", ["lora.r=0", f"{GD}lora.r=-2"])
def test_lora_rank_below_one_is_a_config_error(micro, override):
    with pytest.raises(ObliviateError, match=r"lora\.r: LoRA rank must be at least 1, got -?\d; e\.g\. lora\.r=8"):
        config(micro, override)


def test_lora_rank_below_one_set_after_validation_stops_and_leaves_target(micro):
    _, bench, models = micro
    before = state(models["target"].model)
    method = gd(micro, f"{GD}lora.r=4")
    method.config.lora.r = 0  # pydantic does not re-validate assignments
    with pytest.raises(ObliviateError, match="gradient_difference.*LoRA rank must be at least 1, got lora.r=0"):
        method.unlearn(models["target"], bench)
    assert max_change(state(models["target"].model), before) == 0


def test_a_loss_that_turns_nan_stops_with_method_step_and_fix(micro):
    _, bench, models = micro
    before = state(models["target"].model)
    cfg = config(micro, "methods=[gradient_ascent]", "method_args.gradient_ascent.lr=1e6",
                 "method_args.gradient_ascent.warmup=0", "method_args.gradient_ascent.eval_every=0")
    method = METHODS.get("gradient_ascent")(cfg.method_config("gradient_ascent"))
    with pytest.raises(ObliviateError, match=r"'gradient_ascent': the loss became (nan|inf|-inf) at step \d+ of 40; "
                                             r"lower the learning rate .*gradient_ascent\.lr=100000"):
        method.unlearn(models["target"], bench)
    assert max_change(state(models["target"].model), before) == 0


def test_a_nan_on_a_given_step_names_that_step(micro):
    _, bench, models = micro
    calls = []

    class NanAtThree(METHODS.get("gradient_difference")):
        name = "nan_at_three"

        def loss(self, model, batch):
            calls.append(1)
            loss = super().loss(model, batch)
            return loss * float("nan") if len(calls) == 3 else loss

    cfg = config(micro, f"{GD}steps=10", f"{GD}eval_every=0")
    with pytest.raises(ObliviateError, match="'nan_at_three': the loss became nan at step 3 of 10"):
        NanAtThree(cfg.method_config("gradient_difference")).unlearn(models["target"], bench)


def test_unknown_lora_key_gets_a_did_you_mean(micro):
    with pytest.raises(ObliviateError, match="unknown config key 'lora.rank'"):
        config(micro, "lora.rank=8")
    with pytest.raises(ObliviateError, match="did you mean 'method_args.gradient_difference.lora.merge'"):
        config(micro, f"{GD}lora.merg=false")
