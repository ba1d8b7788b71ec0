"""Supervised unlearning (issue 10): configs, label-free LAF, metrics against references, every method,
the pipeline and report; the presets' acceptance run is behind the slow marker."""

from __future__ import annotations

import copy
import json

import numpy as np
import pytest
import torch
from sklearn.metrics import mean_absolute_error, mean_squared_error, r2_score, roc_auc_score
from torch.nn import functional as F

from obliviate.errors import ObliviateError
from obliviate.supervised.config import load_supervised_config
from obliviate.supervised.data import UnlearnData
from obliviate.supervised.metrics import chance_auc_sd, evaluate, mia_auc, per_example_loss
from obliviate.supervised.pipeline import run_supervised, train_reference
from obliviate.supervised.registry import supervised_methods
from obliviate.supervised.report import within
from obliviate.supervised.tasks import build_task

SMALL_REG = ["synthetic.per_group=80", "model.hidden=[32, 32]", "train.epochs=30", "methods=[]"]
SMALL_DIGITS = ["model.hidden=[64]", "train.epochs=15", "methods=[]"]  # the card test: quick, not converged


@pytest.fixture(autouse=True)
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def digits_setup():
    torch.set_num_threads(1)
    cfg = load_supervised_config("digits", ["methods=[]"])  # the preset's MLP and training: about 2 s
    task = build_task(cfg)
    return cfg, task, {r: train_reference(cfg, task, r) for r in ("target", "gold")}


@pytest.fixture(scope="module")
def regression_setup():
    torch.set_num_threads(1)
    cfg = load_supervised_config("regression", SMALL_REG)
    task = build_task(cfg)
    return cfg, task, {r: train_reference(cfg, task, r) for r in ("target", "gold")}


# ----------------------------------------------------------------------------- configs

def test_presets_load_and_name_their_task():
    reg, dig = load_supervised_config("regression"), load_supervised_config("digits")
    assert (reg.task, reg.forget.kind, dig.task, dig.forget.group) == ("synthetic", "group", "digits", 3)
    assert {"blindspot", "gaussian_ft"} <= set(reg.methods) and "laf" in dig.methods
    assert dig.method_config("laf").temperature == 5.0
    path = load_supervised_config("src/obliviate/configs/regression.yaml", ["seed=3"])
    assert path.seed == 3 and path.task == "synthetic"
    from obliviate.config import load_config
    from obliviate.supervised.config import SupervisedRunConfig

    assert isinstance(load_config("configs/digits.yaml", ["seed=2"]), SupervisedRunConfig)


@pytest.mark.parametrize("overrides, message", [
    (["forget.knd=random"], "did you mean 'forget.kind'"),
    (["methods=[gaussian_ft]"], "method 'gaussian_ft' works on regression tasks"),
    (["methods=[npo]"], "unknown supervised method 'npo'"),
    (["method_args.laf.temprature=3"], "did you mean 'method_args.laf.temperature'"),
    (["forget.fraction=1.5"], "forget.fraction"),
])
def test_config_errors_name_the_input(overrides, message):
    with pytest.raises(ObliviateError, match=message):
        load_supervised_config("digits", overrides)


def test_group_forgetting_needs_groups_and_a_known_group():
    with pytest.raises(ObliviateError, match="no groups to forget"):
        build_task(load_supervised_config("regression", ["task=diabetes"]))
    with pytest.raises(ObliviateError, match="forget.group=12 is not a group"):
        build_task(load_supervised_config("digits", ["forget.group=12"]))


def test_supervised_and_language_model_methods_never_mix():
    from obliviate.config import load_config
    from obliviate.methods import METHODS

    assert not set(supervised_methods().names()) - {"gradient_ascent"} & set(METHODS.names())
    assert supervised_methods().get("gradient_ascent") is not METHODS.get("gradient_ascent")
    with pytest.raises(ObliviateError, match="unknown method 'blindspot'"):
        load_config("micro", ["methods=[blindspot]"])


def test_llm_commands_refuse_a_supervised_preset():
    from typer.testing import CliRunner

    from obliviate.cli import app

    result = CliRunner().invoke(app, ["train", "--config", "regression"])
    assert result.exit_code == 2 and "supervised task" in result.output and "obliviate run" in result.output


# ----------------------------------------------------------------------------- tasks and metrics

def test_splits_are_disjoint_and_group_forgetting_takes_the_whole_class(digits_setup):
    _, task, _ = digits_setup
    assert set(task.forget.y.tolist()) == {3} and set(task.forget_test.y.tolist()) == {3}
    assert 3 not in set(task.retain.y.tolist()) | set(task.test.y.tolist())
    rows = torch.cat([task.retain.x, task.forget.x, task.test.x, task.forget_test.x])
    assert len(torch.unique(rows, dim=0)) >= len(rows) - 20  # digits has a few duplicate images, no shared rows
    assert sum(task.sizes().values()) == 1797


def test_metrics_match_reference_implementations(regression_setup):
    _, task, models = regression_setup
    res = evaluate(models["target"], task, models["gold"])
    with torch.no_grad():
        pred = models["target"](task.test.x)[:, 0].numpy() * task.y_std
    y = task.test.y[:, 0].numpy() * task.y_std
    assert res["test_rmse"].value == pytest.approx(mean_squared_error(y, pred) ** 0.5, rel=1e-5)
    assert res["test_mae"].value == pytest.approx(mean_absolute_error(y, pred), rel=1e-5)
    assert res["test_r2"].value == pytest.approx(r2_score(y, pred), rel=1e-5)
    gold = evaluate(models["gold"], task, models["gold"])
    assert gold["act_dist"].value == 0 and gold["mia_ref_auc"].value == 0.5


def test_mia_auc_and_stable_cross_entropy():
    members, others = torch.tensor([0.1, 0.2, 0.9]), torch.tensor([0.3, 0.8, 1.5, 0.05])
    expected = roc_auc_score([1, 1, 1, 0, 0, 0, 0], [0.1 * -1, -0.2, -0.9, -0.3, -0.8, -1.5, -0.05])
    assert mia_auc(members, others) == pytest.approx(expected)
    logits = torch.tensor([[2.0, -1.0, 0.5], [60.0, 0.0, -3.0], [0.0, 1.0, 0.0]])
    y = torch.tensor([0, 0, 2])
    loss = per_example_loss(lambda x: x, logits, y, "classification")
    reference = F.cross_entropy(logits.double(), y, reduction="none")
    assert torch.allclose(loss[[0, 2]], reference[[0, 2]], rtol=1e-12)
    # a memorised sample: even float64 cross-entropy rounds log(1 + e^-60 + e^-63) to 0, ours keeps it
    assert reference[1] == 0 and loss[1].item() == pytest.approx(np.exp(-60) + np.exp(-63), rel=1e-9)


def test_digits_target_memorises_and_gold_does_not(digits_setup):
    """The preset's target (10 % of digits, 200 epochs) leaks membership to the loss attack; gold, retrained
    by the same recipe without the forgotten class, sits at chance (the 50 % split gave the target 0.52)."""
    _, task, models = digits_setup
    target = evaluate(models["target"], task, models["gold"])["mia_auc"].value
    gold = evaluate(models["gold"], task, models["gold"])["mia_auc"].value
    assert abs(gold - 0.5) <= 0.05 and target >= 0.6 and target > gold + 0.1


def test_mia_compares_forgotten_images_with_unseen_images_of_the_same_class(digits_setup):
    """Members are the forgotten class-3 images, non-members held-out class-3 images: for gold both are unseen,
    so its AUC is 0.5 up to the chance spread of 18 vs 165 samples. Against test images of other classes
    (which gold fits) the same attack would call every forgotten image a non-member: AUC near 0, not 0.5."""
    _, task, models = digits_setup
    gold = models["gold"]
    assert set(task.forget_test.y.tolist()) == set(task.forget.y.tolist()) == {3}
    members = per_example_loss(gold, task.forget.x, task.forget.y, task.kind)
    matched = mia_auc(members, per_example_loss(gold, task.forget_test.x, task.forget_test.y, task.kind))
    unmatched = mia_auc(members, per_example_loss(gold, task.test.x, task.test.y, task.kind))
    sd = chance_auc_sd(len(task.forget), len(task.forget_test))
    assert sd == pytest.approx(0.0719, abs=1e-4)
    assert evaluate(gold, task, gold)["mia_auc"].value == matched and abs(matched - 0.5) <= 2 * sd
    assert unmatched < 0.05


def test_chance_auc_sd_matches_simulation():
    """Two samples from one distribution: the AUC's spread over many draws is Hanley & McNeil's sd."""
    rng = np.random.default_rng(0)
    aucs = [roc_auc_score([1] * 18 + [0] * 165, rng.normal(size=183)) for _ in range(2000)]
    assert np.mean(aucs) == pytest.approx(0.5, abs=0.005)
    assert np.std(aucs) == pytest.approx(chance_auc_sd(18, 165), rel=0.08)


def test_digits_target_leaks_more_than_gold_on_random_forgetting_too():
    for seed in (0, 1, 2):
        cfg = load_supervised_config("digits", ["forget.kind=random", "forget.fraction=0.2", f"seed={seed}",
                                                "methods=[]"])
        task = build_task(cfg)
        models = {r: train_reference(cfg, task, r) for r in ("target", "gold")}
        target, gold = (evaluate(models[r], task, models["gold"])["mia_auc"].value for r in ("target", "gold"))
        assert target > gold + 0.05, (seed, target, gold)


def test_gaussian_ft_mixes_forget_into_retain_by_default(regression_setup):
    """The paper's scheme (relabelled forget samples shuffled into the retain data) unless forget_weight is set."""
    _, task, models = regression_setup
    cls = supervised_methods().get("gaussian_ft")
    assert cls().config.forget_weight is None
    target_rmse = evaluate(models["target"], task, models["gold"])["forget_rmse"].value
    for cfg in (cls.config_class(), cls.config_class(forget_weight=0.3)):
        model = cls(cfg).unlearn(copy.deepcopy(models["target"]), UnlearnData.from_task(task), seed=0)
        assert evaluate(model, task, models["gold"])["forget_rmse"].value > target_rmse


def test_gaussian_ft_defaults_meet_the_bar_on_diabetes_on_most_seeds():
    """Diabetes, 30 % of the train samples forgotten at random, target trained 20 epochs, gaussian_ft at its
    defaults (30 mixed passes at lr 1e-3, retain fitted to the frozen target's outputs, interpolation anchor
    3): the bar holds on 9 of seeds 0-9, seed 0 included, at no more than 6 % test cost (the paper's loss for
    10 passes: 8 of 10, seed 0 a miss at 16 % test cost)."""
    passes, test_cost = [], []
    for seed in range(10):
        cfg = load_supervised_config("regression", ["task=diabetes", "forget.kind=random", "forget.fraction=0.3",
                                                    "train.epochs=20", f"seed={seed}", "methods=[gaussian_ft]",
                                                    "method_args={}"])
        report = run_supervised(cfg, write=False)
        passes.append(report["acceptance"]["gaussian_ft"]["pass"])
        rows = report["models"]
        test_cost.append(rows["gaussian_ft"]["test_rmse"] / rows["target"]["test_rmse"] - 1)
        assert rows["gaussian_ft"]["forget_rmse"] > rows["target"]["forget_rmse"]
    assert passes[0] and sum(passes) >= 8 and max(test_cost) < 0.1 and np.mean(test_cost) < 0.05, (passes, test_cost)


def test_gaussian_ft_anchor_holds_the_function_off_the_forget_set(regression_setup):
    """Fitting retain to the frozen target's outputs and pulling interpolations of retain inputs toward them
    keeps the model's outputs on retain and on unseen test inputs far closer to the target's than the paper's
    loss (retain labels, no anchor) for the same passes, while the forget outputs still move away."""
    _, task, models = regression_setup
    cls, target = supervised_methods().get("gaussian_ft"), models["target"]

    def drift(model, x):
        with torch.no_grad():
            return (model(x) - target(x)).pow(2).mean().sqrt().item()

    ours, paper = (cls(cls.config_class(**kw)).unlearn(copy.deepcopy(target), UnlearnData.from_task(task), seed=0)
                   for kw in ({}, {"retain_targets": "labels", "anchor_weight": 0}))
    assert drift(ours, task.retain.x) < 0.5 * drift(paper, task.retain.x)
    assert drift(ours, task.test.x) < 0.6 * drift(paper, task.test.x)
    ratio = [drift(m, task.forget.x) / drift(m, task.test.x) for m in (ours, paper)]
    assert ratio[0] > ratio[1]  # more of the change falls on the forget inputs
    before = evaluate(target, task, models["gold"])["forget_rmse"].value
    assert evaluate(ours, task, models["gold"])["forget_rmse"].value > 1.1 * before


def test_gaussian_ft_reads_labels_only_when_told_to_fit_them(regression_setup):
    _, task, models = regression_setup
    cls = supervised_methods().get("gaussian_ft")
    assert not cls().uses_labels and cls(cls.config_class(retain_targets="labels")).uses_labels
    model = cls().unlearn(copy.deepcopy(models["target"]), LabelsForbidden(UnlearnData.from_task(task)), seed=0)
    assert any(not torch.equal(a, b) for a, b in zip(model.parameters(), models["target"].parameters()))
    with pytest.raises(AssertionError, match="read the retain labels"):
        cls(cls.config_class(retain_targets="labels")).unlearn(
            copy.deepcopy(models["target"]), LabelsForbidden(UnlearnData.from_task(task)), seed=0)


def test_within_is_relative_with_a_floor():
    assert within(0.70, 0.72) and not within(0.60, 0.72)
    assert within(0.009, 0.0) and not within(0.02, 0.0)  # a zero reference allows ±0.01


# ----------------------------------------------------------------------------- methods

class LabelsForbidden:
    """Inputs only; touching any label fails the test (not an ObliviateError a method could catch)."""

    def __init__(self, data: UnlearnData) -> None:
        self.kind, self.n_outputs = data.kind, data.n_outputs
        self.retain_x, self.forget_x = data.retain_x, data.forget_x

    @property
    def retain_y(self):
        raise AssertionError("the method read the retain labels")

    @property
    def forget_y(self):
        raise AssertionError("the method read the forget labels")


def test_laf_never_reads_labels_and_still_forgets(digits_setup):
    cfg, task, models = digits_setup
    laf = supervised_methods().get("laf")(cfg.method_config("laf"))
    assert not laf.uses_labels
    model = laf.unlearn(copy.deepcopy(models["target"]), LabelsForbidden(UnlearnData.from_task(task)), seed=0)
    before, after = evaluate(models["target"], task, models["gold"]), evaluate(model, task, models["gold"])
    assert before["forget_acc"].value > 0.9 and after["forget_acc"].value < 0.2
    assert after["test_acc"].value >= 0.9 * before["test_acc"].value  # the issue's bar: at most 10 % worse


def test_label_free_view_raises_and_the_repair_step_asks_for_labels(digits_setup):
    cfg, task, models = digits_setup
    data = UnlearnData.from_task(task).label_free()
    with pytest.raises(ObliviateError, match="withheld"):
        supervised_methods().get("retain_ft")().unlearn(copy.deepcopy(models["target"]), data)
    assert supervised_methods().get("laf")(cfg.method_config("laf").model_copy(update={"repair_epochs": 1})).uses_labels


@pytest.mark.parametrize("name", ["retain_ft", "random_labels", "gradient_ascent", "blindspot", "gaussian_ft", "laf"])
def test_every_method_changes_the_model_and_moves_forget_error_toward_gold(regression_setup, name):
    cfg, task, models = regression_setup
    method = supervised_methods().get(name)()
    model = method.unlearn(copy.deepcopy(models["target"]), UnlearnData.from_task(task), seed=0)
    changed = any(not torch.equal(a, b) for a, b in zip(model.parameters(), models["target"].parameters()))
    res = evaluate(model, task, models["gold"])
    target, gold = evaluate(models["target"], task, models["gold"]), evaluate(models["gold"], task, models["gold"])
    assert changed and np.isfinite(res["forget_rmse"].value)
    assert target["forget_rmse"].value < gold["forget_rmse"].value  # the target fits the group it saw
    if name in ("blindspot", "gaussian_ft", "random_labels", "gradient_ascent"):  # they act on the forget set
        assert res["forget_rmse"].value > target["forget_rmse"].value


# ----------------------------------------------------------------------------- pipeline and report

def test_cli_run_writes_a_reproducible_report_card(tmp_path):
    from typer.testing import CliRunner

    from obliviate.cli import app

    over = [*SMALL_DIGITS, "methods=[laf, retain_ft]", "method_args.retain_ft.epochs=1",
            "method_args.laf={epochs: 3, vae_epochs: 3}", f"output_dir={tmp_path}", "name=card"]
    result = CliRunner().invoke(app, ["run", "--config", "digits", *(a for o in over for a in ("--set", o))])
    assert result.exit_code == 0, result.output
    assert "retain_ft" in result.output and "mia_auc" in result.output and "card/report.json" in result.output
    saved = json.loads((tmp_path / "card" / "report.json").read_text())
    again = run_supervised(load_supervised_config("digits", over), write=False)
    assert saved["models"] == json.loads(json.dumps(again["models"]))  # same seed, same numbers
    assert saved["kind"] == "supervised" and saved["unlearning"]["laf"]["uses_labels"] is False
    assert set(saved["models"]) == {"target", "gold", "laf", "retain_ft"}
    page = (tmp_path / "card" / "report.html").read_text()
    for text in ("forget acc", "MIA AUC", "act dist", "laf: forget accuracy", "Glossary"):
        assert text in page


@pytest.mark.slow
@pytest.mark.parametrize("preset, methods", [("regression", ("blindspot", "gaussian_ft")), ("digits", ("laf",))])
def test_presets_meet_the_issue_bar(preset, methods):
    report = run_supervised(load_supervised_config(preset), write=False)
    for name in methods:
        assert report["acceptance"][name]["pass"], report["readings"][name]
    gold, target = report["models"]["gold"]["mia_auc"], report["models"]["target"]["mia_auc"]
    assert abs(gold - 0.5) <= 0.05 and target >= 0.6 and target > gold + 0.1
