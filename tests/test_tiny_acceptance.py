"""The default `tiny` run meets the foundation's acceptance figures (minutes on CPU: `make test-slow`)."""

import pytest

from obliviate.config import load_config
from obliviate.evals import evaluate
from obliviate.pipeline import run, stage_data, stage_models

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    cfg = load_config("tiny", [f"output_dir={tmp_path_factory.mktemp('runs')}"])
    return cfg, run(cfg)


def test_memorisation_and_gold(tiny):
    _, report = tiny
    target, gold = report["models"]["target"], report["models"]["gold"]
    assert min(target["forget_acc"], target["retain_acc"], target["world_acc"]) >= 0.9
    assert gold["forget_acc"] <= 0.15
    assert abs(gold["retain_acc"] - target["retain_acc"]) <= 0.05
    assert abs(gold["world_acc"] - target["world_acc"]) <= 0.05


def test_forget_quality_separates_target_from_another_gold(tiny):
    cfg, report = tiny
    assert report["models"]["target"]["forget_quality"] < 0.01
    other = cfg.model_copy(update={"seed": cfg.seed + 1})
    bench = stage_data(other)
    gold2 = stage_models(other, bench, ("gold",))["gold"]
    ratios = report["per_example"]["gold"]["forget_truth_ratio"]
    assert evaluate(gold2, bench, ratios)["forget_quality"].value >= 0.05


def test_membership_sanity(tiny):
    _, report = tiny
    target, gold = report["models"]["target"], report["models"]["gold"]
    assert abs(gold["mia_min_k_auc"] - 0.5) <= 0.05 and target["priv_leak"] > 20


@pytest.mark.parametrize("other_seed", [1, 2])
def test_gold_of_another_seed_has_privleak_within_5_percent(tiny, other_seed):
    cfg, report = tiny
    other = cfg.model_copy(update={"seed": other_seed})
    bench = stage_data(other)
    gold2 = stage_models(other, bench, ("gold",))["gold"]
    results = evaluate(gold2, bench, gold_privleak_auc=report["models"]["gold"]["privleak_auc"])
    assert abs(results["priv_leak"].value) <= 5.0


def test_verbmem_and_knowmem_separate_target_from_gold(tiny):
    _, report = tiny
    target, gold = report["models"]["target"], report["models"]["gold"]
    assert target["verbmem_forget"] >= 0.6 and gold["verbmem_forget"] <= 0.2
    assert target["forget_rouge"] >= 0.9 and gold["forget_rouge"] <= 0.3


def test_gradient_difference_forgets_and_keeps_world(tiny):
    _, report = tiny
    target, gd = report["models"]["target"], report["models"]["gradient_difference"]
    assert target["forget_acc"] - gd["forget_acc"] >= 0.5 and gd["world_acc"] >= 0.85
