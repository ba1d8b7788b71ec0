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
    # 300 forget vs 300 holdout answers: gold's LOSS AUC is at chance within 0.05
    assert abs(gold["mia_loss_auc"] - 0.5) <= 0.05 and target["mia_loss_auc"] >= 0.9
    # Min-K% runs on the 30 + 30 biographies: chance alone moves an AUC by sd ~0.075 there
    assert abs(gold["mia_min_k_auc"] - 0.5) <= 0.2 and target["priv_leak"] > 20


@pytest.mark.parametrize("other_seed", [1, 2])
def test_gold_of_another_seed_has_privleak_within_chance(tiny, other_seed):
    from obliviate.supervised.metrics import chance_auc_sd

    cfg, report = tiny
    other = cfg.model_copy(update={"seed": other_seed})
    bench = stage_data(other)
    gold2 = stage_models(other, bench, ("gold",))["gold"]
    results = evaluate(gold2, bench, gold_privleak_auc=report["models"]["gold"]["privleak_auc"])
    # two independent AUCs on 30 vs 30 passages: their difference has sd sqrt(2) * chance sd; 2.5 sd
    sd = 2 ** 0.5 * chance_auc_sd(30, 30)
    assert abs(results["priv_leak"].value) <= 100 * 2.5 * sd / report["models"]["gold"]["privleak_auc"]


def test_controls_under_the_equivalence_rule_with_and_without_gold(tiny):
    """Issue 17: the second gold is removed, the target not forgotten, the guarded target suppressed,
    judged against gold and, gold-free, against the 30 holdout people."""
    from obliviate.attacks.controls import EXPECTED, build_controls
    from obliviate.pipeline import attack_all, judge_against_gold
    from obliviate.requests.forget import settings_of
    from obliviate.requests.verify import verify_data

    cfg, _ = tiny
    bench = stage_data(cfg)
    models = stage_models(cfg, bench)
    gold = attack_all(models["gold"], bench, cfg)
    for name, (lm, expected) in {"target": (models["target"], EXPECTED["target"]),
                                 **build_controls(cfg, bench, models["target"])}.items():
        own = attack_all(lm, bench, cfg)
        changes = getattr(lm, "changes_weights", True)
        assert judge_against_gold(own, gold, cfg, changes)["verdict"] == expected, name
        assert verify_data(lm, bench, settings_of(cfg), forget_side=own[0], passages=False)["verdict"] == expected, name


def test_verbmem_and_knowmem_separate_target_from_gold(tiny):
    _, report = tiny
    target, gold = report["models"]["target"], report["models"]["gold"]
    assert target["verbmem_forget"] >= 0.6 and gold["verbmem_forget"] <= 0.2
    assert target["forget_rouge"] >= 0.9 and gold["forget_rouge"] <= 0.3


def test_gradient_difference_forgets_and_keeps_world(tiny):
    _, report = tiny
    target, gd = report["models"]["target"], report["models"]["gradient_difference"]
    assert target["forget_acc"] - gd["forget_acc"] >= 0.5 and gd["world_acc"] >= 0.85
