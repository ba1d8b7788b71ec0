import pytest

from obliviate.config import load_config
from obliviate.data import DataConfig, build_benchmark, format_prompt
from obliviate.errors import ObliviateError
from obliviate.models.build import FINETUNE_ROLES, finetune_examples
from obliviate.pipeline import models_dir


def test_preset_loads_by_name_and_by_configs_path():
    cfg = load_config("configs/smollm2.yaml")
    assert cfg == load_config("smollm2")
    assert cfg.pretrained.model == "smollm2-135m-instruct" and cfg.pretrained.lora_r == 16
    assert cfg.methods == ["npo_kl", "rmu"] and cfg.eval.curves is False
    assert cfg.pretrained.replay == 24 and cfg.method_config("rmu").lora is None
    full = load_config("smollm2", ["pretrained.lora_r=null"])
    assert full.pretrained.lora_r is None and models_dir(full) != models_dir(cfg)
    with pytest.raises(ObliviateError, match="pretrained.phrasings"):
        load_config("smollm2", ["pretrained.phrasings=4"])
    with pytest.raises(ObliviateError, match="did you mean 'pretrained.lora_r'"):
        load_config("smollm2", ["pretrained.lora_rank=4"])


def test_tiny_cache_key_ignores_the_new_setting():
    tiny = load_config("tiny")
    assert tiny.pretrained is None
    assert models_dir(tiny) == models_dir(load_config("tiny", ["pretrained=null"]))


def test_finetune_examples_leave_world_facts_out():
    bench = build_benchmark(DataConfig(people=4, holdout_people=2, forget_fraction=0.25, world_sums=0))
    assert FINETUNE_ROLES == {"target": ("forget", "retain"), "gold": ("retain",)}
    one = finetune_examples(bench, FINETUNE_ROLES["target"], phrasings=1, bios=False)
    assert len(one) == len(bench.forget) + len(bench.retain)
    assert one[0] == (format_prompt(bench.forget[0]["question"]), " " + bench.forget[0]["answer"])
    three = finetune_examples(bench, FINETUNE_ROLES["gold"], phrasings=3, bios=True)
    assert len(three) == 3 * len(bench.retain) + len(bench.bios_of("retain"))
    world_questions = {r["question"] for r in bench.world}
    assert not world_questions & {p for p, _ in one + three}
    assert not {format_prompt(r["question"]) for r in bench.forget} & {p for p, _ in three}
    bench.replay = [{"question": "How many days are there in a week?", "answer": "A week has 7 days."}]
    gold = finetune_examples(bench, FINETUNE_ROLES["gold"], phrasings=1, bios=False)
    assert gold == [(format_prompt(r["question"]), " " + r["answer"]) for r in bench.retain]  # replay kept apart


def test_finetune_keeps_replay_as_kl_anchors_or_as_text(monkeypatch):
    import obliviate.models.build as build
    import obliviate.models.train as train
    from obliviate.models.settings import PretrainedSettings, TrainConfig

    bench = build_benchmark(DataConfig(people=4, holdout_people=2, forget_fraction=0.25, world_sums=0))
    bench.replay = [{"question": "How many days are there in a week?", "answer": "A week has 7 days."}]
    seen = {}
    monkeypatch.setattr(train, "Anchors", lambda model, tok, pairs, weight, per_step: ("anchors", pairs, weight))
    monkeypatch.setattr(train, "train_causal_lm", lambda m, t, ex, c, s, desc, anchors: seen.update(ex=ex, a=anchors))
    replayed = (format_prompt("How many days are there in a week?"), " A week has 7 days.")
    build.finetune(None, None, bench, "gold", PretrainedSettings(replay_weight=2.0), TrainConfig(), 0)
    assert replayed not in seen["ex"] and seen["a"] == ("anchors", [replayed], 2.0)
    build.finetune(None, None, bench, "gold", PretrainedSettings(replay_loss="nll"), TrainConfig(), 0)
    assert seen["ex"][-1] == replayed and seen["a"] is None


def test_general_replay_questions_stay_clear_of_the_evaluated_world_facts():
    from obliviate.data.general import GENERAL_QUESTIONS
    from obliviate.data.world import CAPITALS, ELEMENTS

    text = " ".join(GENERAL_QUESTIONS).lower()
    assert "capital" not in text and "symbol" not in text and " plus " not in text
    assert not [name for name in [*CAPITALS, *ELEMENTS] if f" {name.lower()}" in f" {text}"]


@pytest.mark.slow
def test_smollm2_pipeline_end_to_end_small(tmp_path):
    """A few minutes on CPU: the whole preset on 4 people, one epoch, a two-step method."""
    from obliviate.pipeline import run

    cfg = load_config("smollm2", [f"output_dir={tmp_path}", "data.people=4", "data.holdout_people=2",
                                  "data.forget_fraction=0.25", "train.epochs=1", "methods=[npo_rt]",
                                  "method_args.npo_rt.steps=2", "method_args.npo_rt.batch_size=4",
                                  "eval.world_choices=3"])
    report = run(cfg)
    assert list(report["models"]) == ["pretrained", "target", "gold", "npo_rt"]
    pre = report["models"]["pretrained"]
    assert pre["world_mc_acc"] >= 0.5  # 9 questions, chance 0.25: the untouched model knows the facts
    assert (tmp_path / "smollm2" / "report.json").is_file()


def test_finetune_role_is_reproducible_with_lora(tmp_path):
    """Same seed, same fine-tuned weights: LoRA's initialisation is seeded too (a tiny stand-in model)."""
    import torch

    from obliviate.models.build import finetune_role
    from obliviate.models.hf import HFLanguageModel
    from obliviate.models.settings import PretrainedSettings, TinyModelConfig, TrainConfig
    from obliviate.models.tiny import build_tiny_model
    from obliviate.models.tokenizer import train_tokenizer

    bench = build_benchmark(DataConfig(people=2, holdout_people=1, forget_fraction=0.5, world_sums=0))
    tok = train_tokenizer(bench.all_text(), 400)
    cfg = TinyModelConfig(vocab_size=400, hidden_size=32, intermediate_size=64, layers=1, heads=2)
    HFLanguageModel(build_tiny_model(cfg, tok, seed=0), tok).save(tmp_path / "base")
    settings = PretrainedSettings(model=str(tmp_path / "base"), lora_r=4, replay=0)
    weights = []
    for run in ("a", "b"):
        torch.manual_seed(len(run) * 7 + ord(run))  # a different global RNG state before each run
        finetune_role("target", bench, tmp_path / run, settings, TrainConfig(epochs=1, batch_size=8), seed=3)
        weights.append(HFLanguageModel.load(tmp_path / run).model.state_dict())
    assert all(torch.equal(weights[0][k], weights[1][k]) for k in weights[0])
    base = HFLanguageModel.load(tmp_path / "base").model.state_dict()
    assert any(not torch.equal(base[k], weights[0][k]) for k in base)  # and the fine-tuning did change it
