"""Trade-off sweep: vary a method's strength, plot forget quality against model utility.

    obliviate sweep --method gradient_difference                      # default grid: steps x lr
    obliviate sweep --method gradient_difference --grid steps=20,40,80 --grid retain_weight=1,4

Every point unlearns the run's cached target with one setting and is scored by forget quality
(KS p-value vs gold, higher = more like gold) and TOFU model utility (higher = more kept). A
point is on the Pareto front when no other point is at least as good on both and better on one.
"""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import torch
import yaml
from pydantic import ValidationError

from obliviate.config import RunConfig, config_to_dict
from obliviate.errors import ObliviateError
from obliviate.io import atomic_write_text
from obliviate.parallel import process_pool


def pareto_front(points: list[tuple[float, float]]) -> list[bool]:
    """For each (x, y) to maximise, whether no other point dominates it."""
    return [not any(ox >= x and oy >= y and (ox > x or oy > y) for ox, oy in points) for x, y in points]


def default_grid(cfg: RunConfig, method: str) -> dict[str, list]:
    """Half, same and double the configured steps, times half and the configured learning rate."""
    base = cfg.method_config(method)
    return {"steps": sorted({max(1, base.steps // 2), base.steps, base.steps * 2}), "lr": [base.lr / 2, base.lr]}


def parse_grid(items: list[str], cfg: RunConfig, method: str) -> dict[str, list]:
    """`key=v1,v2` strings into a grid, each key checked against the method's config."""
    config_class = type(cfg.method_config(method))
    fields = config_class.model_fields
    grid = {}
    for item in items:
        key, sep, values = item.partition("=")
        if not sep or not values:
            raise ObliviateError(f"malformed --grid {item!r}: expected key=v1,v2, e.g. steps=20,40,80")
        if key not in fields:
            raise ObliviateError(f"--grid {key!r} is not a setting of {method}; known: {', '.join(fields)}")
        try:  # the method's own config types and checks each value ("1e-3" becomes a float)
            grid[key] = [getattr(config_class(**{key: yaml.safe_load(v)}), key) for v in values.split(",")]
        except ValidationError as err:
            raise ObliviateError(f"--grid {item!r}: {err.errors()[0]['msg']}") from None
    return grid


def _point(cfg_json: dict, method: str, params: dict, gold_ratios: list[float]) -> dict:
    """Unlearn with one setting and score it (runs in a worker process)."""
    from obliviate.evals.tofu import forget_quality, truth_ratios
    from obliviate.evals.utility import model_utility
    from obliviate.methods import METHODS
    from obliviate.pipeline import load_cached

    torch.set_num_threads(1)
    cfg = RunConfig(**cfg_json)
    bench, target = load_cached(cfg)
    config = cfg.method_config(method).model_copy(update=params)
    model = METHODS.get(method)(config).unlearn(target, bench, seed=cfg.seed)
    return {"params": params, "forget_quality": forget_quality(truth_ratios(model, bench.forget), gold_ratios),
            "model_utility": model_utility(model, bench).value}


def _grid_points(cfg: RunConfig, method: str, grid: dict[str, list], gold_ratios: list[float]) -> list[dict]:
    combos = [dict(zip(grid, values)) for values in itertools.product(*grid.values())]
    args = [(config_to_dict(cfg), method, p, gold_ratios) for p in combos]
    with process_pool(len(combos), cfg.threads) as pool:
        return list(pool.map(_point, *zip(*args)))


def _optuna_points(cfg: RunConfig, method: str, trials: int, gold_ratios: list[float]) -> list[dict]:
    """Multi-objective search (NSGA-II) over lr and steps around the configured values."""
    try:
        import optuna
    except ImportError:
        raise ObliviateError("--search optuna needs optuna: pip install optuna") from None
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    base, cfg_json, points = cfg.method_config(method), config_to_dict(cfg), []

    def objective(trial):
        params = {"lr": trial.suggest_float("lr", base.lr / 4, base.lr * 2, log=True),
                  "steps": trial.suggest_int("steps", max(1, base.steps // 4), base.steps * 2)}
        points.append(_point(cfg_json, method, params, gold_ratios))
        return points[-1]["forget_quality"], points[-1]["model_utility"]

    study = optuna.create_study(directions=["maximize", "maximize"],
                                sampler=optuna.samplers.NSGAIISampler(seed=cfg.seed))
    study.optimize(objective, n_trials=trials)
    return points


def run_sweep(cfg: RunConfig, method: str, grid: dict[str, list] | None = None, search: str = "grid",
              trials: int = 8) -> dict:
    """Every point with its Pareto flag; saved as runs/<name>/sweep-<method>.json.

    `search="grid"` runs every combination of `grid` (default: `default_grid`), two at a time;
    `search="optuna"` runs `trials` points of a multi-objective optuna search instead.
    """
    from obliviate.evals.tofu import truth_ratios
    from obliviate.pipeline import run_dir, stage_data, stage_models

    if search not in ("grid", "optuna"):
        raise ObliviateError(f"unknown --search {search!r}; use grid or optuna")
    grid = grid or default_grid(cfg, method)
    bench = stage_data(cfg)
    models = stage_models(cfg, bench)
    gold_ratios = truth_ratios(models["gold"], bench.forget)
    if search == "grid":
        points = _grid_points(cfg, method, grid, gold_ratios)
    else:
        points = _optuna_points(cfg, method, trials, gold_ratios)
    for p, on_front in zip(points, pareto_front([(p["forget_quality"], p["model_utility"]) for p in points])):
        p["pareto"] = on_front
    result = {"method": method, "search": search, "grid": grid if search == "grid" else None, "points": points}
    atomic_write_text(run_dir(cfg) / f"sweep-{method}.json", json.dumps(result, indent=1) + "\n")
    return result


def attach_to_report(run_directory: Path, result: dict) -> dict | None:
    """Add the sweep to the run's report.json (if the run has one) and return the updated report."""
    path = run_directory / "report.json"
    if not path.is_file():
        return None
    report = json.loads(path.read_text())
    report.setdefault("sweep", {})[result["method"]] = {"grid": result["grid"], "points": result["points"]}
    atomic_write_text(path, json.dumps(report, indent=1) + "\n")
    return report
