"""Every weight-space method on the tiny preset at 1 %, 5 % and 10 % forget: what each forgets and keeps.

    python benchmarks/methods.py [--config tiny] [--methods npo_rt,rmu] [--readme]

For each forget fraction (people nested: 1 % inside 5 % inside 10 %) every method unlearns the
cached target with its default config, stopping early as `obliviate run` does (once forget
accuracy on the validation slice reaches gold's), and the full evaluation suite scores the result:
accuracy on forget / retain / world / neighbour questions, forget quality (KS p-value of forget
truth ratios against gold's for the same people), model utility, the steps run and the wall
time of the unlearning. Gold is the one retrained model that never saw any forget person.
The issue-5 bar is checked at the config's own fraction (10 % on tiny): forget accuracy within
10 points of gold's, retain and world accuracy at least 90 % of the target's.

Writes benchmarks/results/methods.json and prints markdown tables; `--readme` also rewrites the
block between the methods-table markers in README.md. `--methods all` adds the methods of every
family (inference-time guards too); the default is every registered weight-space method.
"""

from __future__ import annotations

import argparse
import inspect
import json
import os
import time
from pathlib import Path

import torch
from readme_block import write_block

from obliviate.config import load_config
from obliviate.data.benchmark import forget_people
from obliviate.evals import evaluate
from obliviate.methods import METHODS
from obliviate.methods.base import slice_accuracy, validation_slice
from obliviate.pipeline import stage_data, stage_models

FRACTIONS = (0.01, 0.05, 0.1)
KEYS = ("forget_acc", "retain_acc", "world_acc", "neighbours_acc", "forget_quality", "model_utility")


def weight_space_methods() -> list[str]:
    return [n for n in METHODS.names() if METHODS.get(n).__module__.startswith("obliviate.methods.weight_space.")]


def scores(results: dict) -> dict:
    return {k: results[k].value for k in KEYS if k in results}


def meets_bar(row: dict, target: dict, gold: dict) -> bool:
    return (row["forget_acc"] <= gold["forget_acc"] + 0.10 and row["retain_acc"] >= 0.9 * target["retain_acc"]
            and row["world_acc"] >= 0.9 * target["world_acc"])


def run(config: str, methods: list[str], fractions: tuple[float, ...], seed: int | None) -> dict:
    load_before = os.getloadavg()[0]  # > ~0.5: other jobs shared the cores and the timings are inflated
    cfg = load_config(config, [] if seed is None else [f"seed={seed}"])
    bench = stage_data(cfg)
    models = stage_models(cfg, bench)
    gold_all = evaluate(models["gold"], bench)["forget_truth_ratio"].per_example
    gold_of = {(r["person"], r["attribute"]): x for r, x in zip(bench.forget, gold_all, strict=True)}
    points = {}
    for fraction in fractions:
        sub = bench if fraction == cfg.data.forget_fraction else bench.restrict_forget(
            forget_people(cfg.data, fraction))
        gold_ratios = [gold_of[(r["person"], r["attribute"])] for r in sub.forget]
        rows = {name: scores(evaluate(models[name], sub, gold_ratios)) for name in ("target", "gold")}
        for name in methods:
            config = cfg.method_config(name)
            method = METHODS.get(name)(config)
            # As `obliviate run` does: stop once the validation slice reaches gold's accuracy on it.
            stop = ({"stop_at": slice_accuracy(models["gold"], validation_slice(sub, config.eval_size))}
                    if getattr(config, "eval_every", 0) and "stop_at" in inspect.signature(method.unlearn).parameters
                    else {})
            start = time.perf_counter()
            model = method.unlearn(models["target"], sub, seed=cfg.seed, **stop)
            seconds = time.perf_counter() - start
            rows[name] = scores(evaluate(model, sub, gold_ratios)) | {
                "steps": method.facts()["steps"], "stopped": method.facts()["stopped"], "seconds": round(seconds, 1)}
            print(f"{fraction:.0%} {name}: " + ", ".join(f"{k} {v:.3g}" if isinstance(v, float) else f"{k} {v}" for k, v in rows[name].items()), flush=True)
        points[str(fraction)] = {"people": len(sub.people("forget")), "forget_questions": len(sub.forget),
                                 "models": rows}
    main = points.get(str(cfg.data.forget_fraction))
    bar = ({n: meets_bar(r, main["models"]["target"], main["models"]["gold"]) for n, r in main["models"].items()
            if n not in ("target", "gold")} if main else {})
    return {"config": config, "seed": cfg.seed, "fractions": list(fractions), "main_fraction": cfg.data.forget_fraction,
            "configs": {n: cfg.method_config(n).model_dump(mode="json") for n in methods},
            "meets_bar_at_main_fraction": bar, "cpus": os.cpu_count(), "torch_threads": torch.get_num_threads(),
            "load_average_before": round(load_before, 2), "points": points}


def _jsonable(obj):
    """A config object that reached the results (task_vector's once did) as its plain dict."""
    return obj.model_dump(mode="json") if hasattr(obj, "model_dump") else str(obj)


def pct(x: float | None) -> str:
    return "n/a" if x is None else f"{100 * x:.0f}"


def tables(result: dict) -> str:
    main = result["points"][str(result["main_fraction"])]["models"]
    bar = result["meets_bar_at_main_fraction"]
    lines = [f"At {result['main_fraction']:.0%} forget ({result['config']} preset, seed {result['seed']}; accuracies in %; "
             "bar: forget ≤ gold + 10 points, retain and world ≥ 90 % of the target's):", "",
             "| model | forget acc | retain acc | world acc | neigh acc | forget quality | model utility | steps "
             "| unlearn s | meets bar |", "| --- | " + "--- | " * 9]
    for name, r in main.items():
        meets = "—" if name not in bar else ("yes" if bar[name] else "no")
        lines.append(f"| {name} | {pct(r['forget_acc'])} | {pct(r['retain_acc'])} | {pct(r['world_acc'])} | "
                     f"{pct(r['neighbours_acc'])} | {r['forget_quality']:.2g} | {r['model_utility']:.3f} | "
                     f"{r.get('steps', '—')} | {r.get('seconds', '—')} | {meets} |")
    fracs = result["fractions"]
    lines += ["", "Forget / retain accuracy (%) by forget fraction (people: "
              + ", ".join(f"{f:.0%} = {result['points'][str(f)]['people']}" for f in fracs) + "):", "",
              "| model | " + " | ".join(f"{f:.0%}" for f in fracs) + " |", "| --- | " + "--- | " * len(fracs)]
    for name in main:
        cells = [result["points"][str(f)]["models"].get(name) for f in fracs]
        lines.append(f"| {name} | " + " | ".join(
            "—" if c is None else f"{pct(c['forget_acc'])} / {pct(c['retain_acc'])}" for c in cells) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="tiny")
    parser.add_argument("--methods", default=None, help="comma-separated names, 'all', or none = weight-space")
    parser.add_argument("--fractions", default=",".join(map(str, FRACTIONS)))
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--out", default="benchmarks/results/methods.json")
    parser.add_argument("--readme", action="store_true", help="rewrite the methods table in README.md")
    parser.add_argument("--from-json", action="store_true", help="only print (and --readme) the saved results")
    parser.add_argument("--merge", action="store_true", help="run --methods only and replace their rows in --out")
    args = parser.parse_args()
    if args.from_json:
        result = json.loads(Path(args.out).read_text())
    else:
        names = (METHODS.names() if args.methods == "all" else
                 args.methods.split(",") if args.methods else weight_space_methods())
        result = run(args.config, names, tuple(float(f) for f in args.fractions.split(",")), args.seed)
        if args.merge:  # re-measure some methods, keep the saved rows of the others
            saved = json.loads(Path(args.out).read_text())
            for fraction, point in result["points"].items():
                saved["points"][fraction]["models"].update(point["models"])
            saved["configs"].update(result["configs"])
            saved["meets_bar_at_main_fraction"].update(result["meets_bar_at_main_fraction"])
            saved.setdefault("remeasured", []).append({"methods": names, "load_average_before":
                                                        result["load_average_before"]})
            result = saved
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(result, indent=1, default=_jsonable) + "\n")
    table = tables(result)
    print(table)
    if args.readme:
        write_block("methods-table", table)


if __name__ == "__main__":
    main()
