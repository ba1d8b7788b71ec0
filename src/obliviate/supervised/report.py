"""The supervised report: the same report.json layout as `obliviate run` (models, metrics, timings),
plus the table's columns, a one-sentence reading per method and the acceptance check.

Acceptance (issue 10): a method's forget error (RMSE) or accuracy within 10 % of gold's (either
side), and its retain and test error or accuracy no more than 10 % worse than the target's (better
is fine). Percentages are relative to the reference value floored at 0.1, so a reference of 0
(gold's accuracy on a class it never saw) allows ±0.01.
"""

from __future__ import annotations

import time

from obliviate.runtime import environment
from obliviate.supervised.metrics import SPLITS

TOLERANCE = 0.1


def main_metric(kind: str) -> str:
    return "rmse" if kind == "regression" else "acc"


def metric_columns(kind: str) -> list[tuple[str, str, bool | None]]:
    """(key, header, higher_is_better) for the summary table."""
    better = {"rmse": False, "mae": False, "r2": True, "acc": True}
    names = ("rmse", "mae", "r2") if kind == "regression" else ("acc",)
    cols = [(f"{s}_{m}", f"{s.replace('_', ' ')} {m.upper() if m != 'acc' else 'acc'}",
             None if s.startswith("forget") else better[m]) for m in names for s in SPLITS]
    return [*cols, ("mia_auc", "MIA AUC", None), ("mia_ref_auc", "MIA ref AUC", None), ("act_dist", "act dist", False)]


def within(value: float, reference: float, tolerance: float = TOLERANCE) -> bool:
    return abs(value - reference) <= tolerance * max(abs(reference), 0.1)


def not_worse(value: float, reference: float, higher_is_better: bool, tolerance: float = TOLERANCE) -> bool:
    """At most `tolerance` (relative) worse than the reference; being better is fine."""
    slack = tolerance * max(abs(reference), 0.1)
    return value >= reference - slack if higher_is_better else value <= reference + slack


def acceptance(models: dict[str, dict], kind: str) -> dict[str, dict[str, bool]]:
    m, gold, target = main_metric(kind), models["gold"], models["target"]
    up = m == "acc"
    out = {}
    for name, row in models.items():
        checks = {"forget_vs_gold": within(row[f"forget_{m}"], gold[f"forget_{m}"]),
                  "retain_vs_target": not_worse(row[f"retain_{m}"], target[f"retain_{m}"], up),
                  "test_vs_target": not_worse(row[f"test_{m}"], target[f"test_{m}"], up)}
        out[name] = checks | {"pass": all(checks.values())}
    return out


def reading(name: str, models: dict[str, dict], checks: dict[str, bool], kind: str) -> str:
    m = main_metric(kind)
    row, gold, target = models[name], models["gold"], models["target"]
    label = "RMSE" if m == "rmse" else "accuracy"
    parts = [f"forget {label} {row[f'forget_{m}']:.3f} (gold {gold[f'forget_{m}']:.3f}, "
             f"target {target[f'forget_{m}']:.3f})",
             f"retain {row[f'retain_{m}']:.3f} and test {row[f'test_{m}']:.3f} (target "
             f"{target[f'retain_{m}']:.3f}, {target[f'test_{m}']:.3f})",
             f"MIA AUC {row['mia_auc']:.3f} (gold {gold['mia_auc']:.3f}, target {target['mia_auc']:.3f}; "
             f"gold-calibrated {row['mia_ref_auc']:.3f}, target {target['mia_ref_auc']:.3f})"]
    misses = [what for what, key in (("forget is not within 10 % of gold", "forget_vs_gold"),
                                     ("retain is over 10 % worse than target", "retain_vs_target"),
                                     ("test is over 10 % worse than target", "test_vs_target")) if not checks[key]]
    verdict = "meets the 10 % bar" if not misses else "; ".join(misses)
    return f"{name}: " + ", ".join(parts) + f": {verdict}."


def build_report(cfg, task, results: dict[str, dict], facts: dict, timings: dict) -> dict:
    first = next(iter(results.values()))
    models = {name: {k: r.value for k, r in res.items()} for name, res in results.items()}
    checks = acceptance(models, task.kind)
    return {
        "obliviate_report": 1,
        "kind": "supervised",
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "config": cfg.model_dump(mode="json"),
        "seed": cfg.seed,
        "environment": environment(),
        "task": {"name": task.name, "kind": task.kind, "features": task.n_features, "outputs": task.n_outputs,
                 "forget": cfg.forget.model_dump(mode="json")},
        "benchmark": task.sizes(),
        "metrics": {k: {"higher_is_better": r.higher_is_better, "description": r.description}
                    for k, r in first.items()},
        "metric_columns": [list(c) for c in metric_columns(task.kind)],
        "models": models,
        "unavailable": {},
        "acceptance": checks,
        "readings": {name: reading(name, models, checks[name], task.kind) for name in models
                     if name not in ("target", "gold")},
        "unlearning": facts,
        "timings_s": {k: round(v, 2) for k, v in timings.items()},
    }


def print_supervised_table(report: dict, console) -> None:
    from rich.table import Table

    from obliviate.table import fmt

    kind = report["task"]["kind"]
    m = main_metric(kind)
    keys = [f"{s}_{m}" for s in SPLITS] + (["test_r2"] if kind == "regression" else [])
    keys += ["mia_auc", "mia_ref_auc", "act_dist"]
    arrow = {True: "↑", False: "↓", None: "≈"}
    table = Table(caption="↑ higher is better  ↓ lower is better  ≈ closer to gold is better; "
                          "bar: forget within 10 % of gold, retain and test at most 10 % worse than target")
    table.add_column("model", no_wrap=True)
    for key in keys:
        table.add_column(f"{key} {arrow[report['metrics'][key]['higher_is_better']]}", justify="right")
    table.add_column("bar", justify="center")
    for name, row in report["models"].items():
        bar = "" if name in ("target", "gold") else ("pass" if report["acceptance"][name]["pass"] else "fail")
        table.add_row(name, *(fmt(row[k], k) for k in keys), bar)
    console.print(table)
