"""The supervised job: task -> target + gold -> each method -> evaluation -> report.json / report.html.

    from obliviate.config import load_config
    from obliviate.supervised.pipeline import run_supervised
    report = run_supervised(load_config("regression"))    # or: obliviate run --config regression

Target trains on retain + forget, gold (the ideal) retrains from the same initialisation on retain
only. Every method starts from a copy of the target. Seeded end to end; small enough not to cache.
"""

from __future__ import annotations

import copy
import json
import time
from pathlib import Path

import torch

from obliviate.io import atomic_write_text
from obliviate.supervised.config import SupervisedRunConfig
from obliviate.supervised.data import UnlearnData
from obliviate.supervised.metrics import evaluate
from obliviate.supervised.models import build_model
from obliviate.supervised.registry import supervised_methods
from obliviate.supervised.report import build_report
from obliviate.supervised.tasks import Task, build_task
from obliviate.supervised.train import fit


def train_reference(cfg: SupervisedRunConfig, task: Task, role: str) -> torch.nn.Module:
    """`target` (trained on retain + forget) or `gold` (retain only), from the same initialisation."""
    x, y = task.retain.x, task.retain.y
    if role == "target":
        x, y = torch.cat([x, task.forget.x]), torch.cat([y, task.forget.y])
    model = build_model(task.n_features, cfg.model.hidden, task.n_outputs, cfg.seed)
    t = cfg.train
    return fit(model, x, y, task.kind, t.epochs, t.lr, t.batch_size, t.weight_decay, cfg.seed)


def unlearn(cfg: SupervisedRunConfig, name: str, target: torch.nn.Module, task: Task) -> tuple[torch.nn.Module, dict]:
    """Method `name` on a copy of the target; label-free methods get data whose labels cannot be read."""
    method = supervised_methods().get(name)(cfg.method_config(name))
    data = UnlearnData.from_task(task)
    if not method.uses_labels:
        data = data.label_free()
    torch.manual_seed(cfg.seed)
    start = time.perf_counter()
    model = method.unlearn(copy.deepcopy(target), data, seed=cfg.seed)
    return model, {"method": name, "config": method.config.model_dump(mode="json"), "uses_labels": method.uses_labels,
                   "seconds": round(time.perf_counter() - start, 3)}


def run_supervised(cfg: SupervisedRunConfig, write: bool = True) -> dict:
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    timings, start = {}, time.perf_counter()
    task = build_task(cfg)
    models = {role: train_reference(cfg, task, role) for role in ("target", "gold")}
    timings["models"] = time.perf_counter() - start
    facts = {}
    for name in cfg.methods:
        models[name], facts[name] = unlearn(cfg, name, models["target"], task)
        timings[f"unlearn:{name}"] = facts[name]["seconds"]
    t = time.perf_counter()
    results = {name: evaluate(model, task, models["gold"]) for name, model in models.items()}
    timings["evaluation"] = time.perf_counter() - t
    timings["total"] = time.perf_counter() - start
    report = build_report(cfg, task, results, facts, timings)
    if write:
        write_supervised(report, Path(cfg.output_dir) / cfg.name)
    return report


def write_supervised(report: dict, directory: Path) -> None:
    from obliviate.evals.report import write_html

    atomic_write_text(directory / "report.json", json.dumps(report, indent=1) + "\n")
    write_html(report, directory / "report.html")
