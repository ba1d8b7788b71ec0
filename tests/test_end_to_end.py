"""The whole job on the `micro` preset: the memorisation, gold and forgetting relations, in small."""

import json

import pytest

from obliviate.config import load_config
from obliviate.evals import evaluate
from obliviate.pipeline import run, stage_data, stage_models


@pytest.fixture(scope="module")
def micro(tmp_path_factory):
    out = tmp_path_factory.getbasetemp() / "micro-full"  # shared with test_attacks.py: micro trains once
    cfg = load_config("micro", [f"output_dir={out}", "verdict.enabled=true"])
    return cfg, run(cfg), out


def test_target_memorises_and_gold_does_not(micro):
    _, report, _ = micro
    target, gold = report["models"]["target"], report["models"]["gold"]
    assert target["forget_acc"] >= 0.9 and target["retain_acc"] >= 0.9 and target["world_acc"] >= 0.9
    assert gold["forget_acc"] <= 0.15
    assert abs(gold["retain_acc"] - target["retain_acc"]) <= 0.05
    assert abs(gold["world_acc"] - target["world_acc"]) <= 0.05


def test_forget_quality_separates_target_from_gold(micro):
    _, report, _ = micro
    # 40 forget truth ratios on micro: p < 0.05 (distinguishable); tiny's 100 give p < 0.01 (slow test)
    assert report["models"]["target"]["forget_quality"] < 0.05
    assert report["models"]["gold"]["forget_quality"] == pytest.approx(1.0)


def test_gradient_difference_forgets_and_keeps_world(micro):
    _, report, _ = micro
    target, gd = report["models"]["target"], report["models"]["gradient_difference"]
    assert target["forget_acc"] - gd["forget_acc"] >= 0.5
    assert gd["world_acc"] >= 0.85
    assert set(report["models"]) == {"target", "gold", "gradient_ascent", "gradient_difference"}


def test_report_records_how_to_reproduce(micro):
    cfg, report, out = micro
    on_disk = json.loads((out / "micro" / "report.json").read_text())
    assert on_disk["models"] == report["models"]
    assert on_disk["config"]["seed"] == cfg.seed and on_disk["config"]["name"] == "micro"
    assert on_disk["environment"]["packages"]["torch"]
    assert len(on_disk["per_example"]["target"]["forget_acc"]) == on_disk["benchmark"]["forget"]


def test_second_run_reuses_models_and_reproduces_numbers(micro):
    cfg, report, _ = micro
    again = run(cfg)
    assert again["models"] == report["models"]
    assert again["timings_s"]["models"] < 0.5 * max(report["timings_s"]["models"], 1.0)


def test_gold_with_another_seed_is_indistinguishable(micro):
    cfg, report, _ = micro
    other = cfg.model_copy(update={"seed": cfg.seed + 1})
    bench = stage_data(other)
    gold2 = stage_models(other, bench, ("gold",))["gold"]
    gold_ratios = report["per_example"]["gold"]["forget_truth_ratio"]
    gold = report["models"]["gold"]
    results = evaluate(gold2, bench, gold_ratios, gold_privleak_auc=gold["privleak_auc"])
    assert results["forget_quality"].value >= 0.05
    # The QA-answer attacks score 40 member vs 200 non-member records, so an AUC moves by ~0.05
    # between seeds. PrivLeak's Min-K% scores passages, one per person: micro's 4 forget vs 20
    # holdout biographies give a null AUC a standard deviation of ~0.16, too few to bound a gold
    # seed's PrivLeak here (seed 1: -62 %); it is bounded on tiny (tests/test_tiny_acceptance.py).
    assert abs(results["mia_loss_auc"].value - gold["mia_loss_auc"]) <= 0.05
    assert results["priv_leak"].value is not None


def test_membership_and_memorisation_sanity(micro):
    _, report, _ = micro
    target, gold = report["models"]["target"], report["models"]["gold"]
    assert abs(gold["mia_loss_auc"] - 0.5) <= 0.05  # gold saw neither forget nor holdout (40 vs 200 QA records)
    # Min-K% on passages: 4 forget vs 20 holdout biographies, a null AUC's sd ~0.16, so only the target is sharp
    assert target["mia_min_k_auc"] >= 0.9 and abs(gold["mia_min_k_auc"] - 0.5) <= 0.35
    assert target["priv_leak"] > 20  # the target leaks membership of what it was trained on
    assert target["verbmem_forget"] >= 0.9 and target["verbmem_forget"] - gold["verbmem_forget"] >= 0.3
    assert target["forget_rouge"] >= 0.9 and gold["forget_rouge"] <= 0.2  # KnowMem forget
    assert 0 < target["model_utility"] <= 1 and report["unavailable"]["target"] == {}


def test_scalability_and_sustainability_curves(micro):
    cfg, report, _ = micro
    scal, sust = report["scalability"], report["sustainability"]
    assert scal["fractions"] == [0.05, 0.1, 0.2]
    for name in cfg.methods:
        points = scal["methods"][name]
        assert [p["fraction"] for p in points] == [0.05, 0.1, 0.2]
        assert [p["people"] for p in points] == [1, 2, 4]
        seq = sust["methods"][name]
        assert [p["request"] for p in seq] == [1, 2] and [p["people"] for p in seq] == [2, 4]
    # gradient difference forgets each request it is given
    assert all(p["forget_acc"] <= 0.5 for p in sust["methods"]["gradient_difference"])


def test_quick_run_skips_curves(micro):
    cfg, _, _ = micro  # same run directory: the cached target and gold are reused
    quick = run(cfg.model_copy(update={"methods": [],
                                       "eval": cfg.eval.model_copy(update={"curves": False})}))
    assert "scalability" not in quick and set(quick["models"]) == {"target", "gold"}


def test_sweep_scores_points_and_marks_the_front(micro):
    from obliviate.sweep import attach_to_report, run_sweep

    cfg, _, out = micro
    result = run_sweep(cfg, "gradient_ascent", {"steps": [5, 40]})
    assert [p["params"] for p in result["points"]] == [{"steps": 5}, {"steps": 40}]
    assert all(0 <= p["forget_quality"] <= 1 and 0 <= p["model_utility"] <= 1 for p in result["points"])
    assert any(p["pareto"] for p in result["points"])
    assert (out / "micro" / "sweep-gradient_ascent.json").is_file()
    assert attach_to_report(out / "micro", result)["sweep"]["gradient_ascent"]["points"] == result["points"]


def test_verdict_judges_the_controls_and_every_method(micro):
    cfg, report, out = micro
    verdicts = report["verdict"]
    assert set(verdicts) == {"target", "gold_seed1", "guarded_target", "gradient_ascent", "gradient_difference"}
    assert verdicts["target"]["verdict"] == "not forgotten" and verdicts["target"]["deciding"] == "plain"
    assert verdicts["guarded_target"]["verdict"] == "suppressed"
    # micro has 4 forget people: too few to show equivalence, so the second gold is inconclusive,
    # never wrongly "suppressed" or "not forgotten", and says it needs more people than it has
    gold2 = verdicts["gold_seed1"]
    assert gold2["verdict"] in ("removed", "inconclusive") and not gold2["above"]
    assert gold2["verdict"] == "removed" or gold2["subjects_needed"] > 4
    assert {"relearning", "quantization_int8", "quantization_4bit", "probe"} <= set(verdicts["guarded_target"]["skipped"])
    page = (out / cfg.name / "report.html").read_text()
    assert "Removed or suppressed?" in page and "guarded_target" in page
