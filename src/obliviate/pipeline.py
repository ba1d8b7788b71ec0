"""The main job, stage by stage: data -> target + gold -> each method -> evaluation -> report.

    from obliviate.config import load_config
    from obliviate.pipeline import run
    report = run(load_config("tiny"))          # also writes runs/tiny/report.json

Every stage caches its artefact under runs/<name>/cache/, keyed by a hash of what produced it,
so a second run reuses the trained target and gold models.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import torch

from obliviate.config import EvalConfig, RunConfig, config_hash, config_to_dict
from obliviate.data import Benchmark, build_benchmark
from obliviate.data.benchmark import GENERATOR_VERSION
from obliviate.evals.report import write_html
from obliviate.io import atomic_dir, atomic_write_text
from obliviate.models.hf import HFLanguageModel
from obliviate.parallel import process_pool
from obliviate.runtime import environment


CHOICE_FIELDS = {"world_choices", "forget_choice_files", "utility_choice_files"}


def run_dir(cfg: RunConfig) -> Path:
    return Path(cfg.output_dir) / cfg.name


def data_dir(cfg: RunConfig) -> Path:
    if cfg.data.path is None:  # built-in data: the key predates data.path, so old caches stay valid
        key = {"data": cfg.data.model_dump(mode="json", exclude=cfg.data.external_fields()),
               "generator": GENERATOR_VERSION}
    else:
        from obliviate.data.loaders import files_fingerprint

        key = {"data": cfg.data, "files": files_fingerprint(cfg.data.path)}
    return run_dir(cfg) / "cache" / f"data-{config_hash(key)}"


def models_dir(cfg: RunConfig) -> Path:
    parts = {"data": data_dir(cfg).name, "model": cfg.model, "train": cfg.train, "seed": cfg.seed}
    if cfg.pretrained is not None:  # only then: tiny runs keep their cache keys
        parts["pretrained"] = cfg.pretrained
    key = config_hash(parts)
    return run_dir(cfg) / "cache" / f"models-{key}"


def method_dir(cfg: RunConfig, name: str) -> Path:
    # The method's full config is in the key: LoRA settings (run-level ones included, as
    # method_config merges them in) and early-stopping settings change the artefact.
    key = config_hash({"models": models_dir(cfg).name, "method": name, "args": cfg.method_config(name),
                       "seed": cfg.seed})
    return run_dir(cfg) / "cache" / f"method-{name}-{key}"


def stage_data(cfg: RunConfig) -> Benchmark:
    path = data_dir(cfg)
    if not (path / "bios.jsonl").is_file():
        if cfg.data.path is None:
            bench = build_benchmark(cfg.data)
        else:
            from obliviate.data.loaders import load_external

            d = cfg.data
            bench = load_external(d.path, d.format, d.forget_split, d.retain_split, d.seed)
        with atomic_dir(path) as tmp:
            bench.save(tmp)
    bench = Benchmark.load(path)
    if cfg.pretrained is not None and cfg.pretrained.replay:
        from obliviate.models.build import general_replay

        models_dir(cfg).mkdir(parents=True, exist_ok=True)
        bench.replay = general_replay(cfg.pretrained, models_dir(cfg) / "replay.jsonl")
    return bench


def stage_models(cfg: RunConfig, bench: Benchmark, roles: tuple[str, ...] = ("target", "gold")
                 ) -> dict[str, HFLanguageModel]:
    from obliviate.models.build import build_models, finetune_models

    if cfg.pretrained is not None:
        return finetune_models(bench, models_dir(cfg), cfg.pretrained, cfg.train, cfg.seed, roles)
    return build_models(bench, data_dir(cfg), models_dir(cfg), cfg.model, cfg.train, cfg.seed, roles, cfg.threads)


def stage_unlearn(cfg: RunConfig, name: str, target: HFLanguageModel, bench: Benchmark,
                  gold: HFLanguageModel | None = None) -> tuple[HFLanguageModel, dict]:
    """Run method `name` on the target (or reuse its cached result); returns the model and run facts.

    The method stops early once its forget accuracy on the validation slice reaches the gold
    model's (`gold`, loaded from the run's cache when not given), or on its step budget. Under
    `accelerate launch` every process trains and only the main one writes the result.
    """
    import inspect

    from accelerate import PartialState

    from obliviate.methods import METHODS
    from obliviate.methods.base import slice_accuracy, validation_slice

    from obliviate.guards import is_guarded_dir, load_guarded

    from obliviate.methods.exact import is_exact_dir, load_exact

    path = method_dir(cfg, name)
    if is_guarded_dir(path):  # an inference-time guard: the target's weights plus the guard's state
        return load_guarded(path, name=name), json.loads((path / "unlearning.json").read_text())
    if is_exact_dir(path):  # an exact method's store: lineage, checkpoints, served as an ensemble
        return load_exact(path, name=name), json.loads((path / "unlearning.json").read_text())
    if (path / "config.json").is_file():
        facts = json.loads((path / "unlearning.json").read_text())
        return HFLanguageModel.load(path, name=name), facts
    config = cfg.method_config(name)
    method = METHODS.get(name)(config)
    start = time.perf_counter()
    extra = {}
    if getattr(config, "eval_every", 0) and "stop_at" in inspect.signature(method.unlearn).parameters:
        if gold is None:
            gold = stage_models(cfg, bench, ("gold",))["gold"]
        extra["stop_at"] = slice_accuracy(gold, validation_slice(bench, config.eval_size))
    model = method.unlearn(target, bench, seed=cfg.seed, **extra)
    facts = {"method": name, "config": method.config.model_dump(mode="json"),
             "seconds": round(time.perf_counter() - start, 2), "gold_slice_acc": extra.get("stop_at"),
             **method.facts()}
    if PartialState().is_main_process:
        with atomic_dir(path) as tmp:
            model.save(tmp)
            (tmp / "unlearning.json").write_text(json.dumps(facts, indent=2))
    return model, facts


def evaluate_all(models: dict[str, HFLanguageModel], bench: Benchmark, samples: dict | None = None,
                 settings: EvalConfig | None = None) -> dict[str, dict]:
    """Evaluate every model. Gold goes first: its forget-set truth ratios are the forget-quality
    reference, its Min-K% AUC on passages the PrivLeak reference (n/a, with the reason, on a
    benchmark without forget and holdout passages), and gold itself the reference model of the
    reference-based membership attack.

    `samples`, when given, receives each model's first greedy answers on the forget split.
    """
    from obliviate.evals import evaluate
    from obliviate.evals.mia import privleak_metric
    from obliviate.evals.suite import forget_quality_metric

    s = settings or EvalConfig()
    from obliviate.evals.multiple_choice import choice_sets

    knobs = {"mia_k": s.mia_k, "privleak_k": s.privleak_k, "verbmem_prefix_words": s.verbmem_prefix_words,
             "choices": choice_sets(s.world_choices, s.forget_choice_files, s.utility_choice_files)}
    gold_lm, generations = models["gold"], {}
    gold = evaluate(gold_lm, bench, None, generations.setdefault("gold", {}), reference=gold_lm, **knobs)
    gold_ratios, gold_auc = gold["forget_truth_ratio"].per_example, gold["privleak_auc"].value
    gold["forget_quality"] = forget_quality_metric(gold_ratios, gold_ratios)
    if gold_auc is not None:  # else evaluate already set priv_leak to n/a with the reason (no passages)
        gold["priv_leak"] = privleak_metric(gold_auc, gold_auc, s.privleak_k)
    results = {"gold": gold}
    for name, lm in models.items():
        if name != "gold":
            results[name] = evaluate(lm, bench, gold_ratios, generations.setdefault(name, {}), reference=gold_lm,
                                     gold_privleak_auc=gold_auc, **knobs)
    if samples is not None:
        for name in models:
            samples[name] = [{"question": r["question"], "answer": r["answer"], "generated": g}
                             for r, g in zip(bench.forget[:5], generations[name]["forget"])]
    return {name: results[name] for name in models}


def load_cached(cfg: RunConfig) -> tuple[Benchmark, HFLanguageModel]:
    """The run's cached benchmark and target, as worker processes reload them."""
    return stage_data(cfg), HFLanguageModel.load(models_dir(cfg) / "target", name="target")


def _curve_job(cfg_json: dict, name: str, kind: str, gold: dict) -> list[dict]:
    """One method's scalability or sustainability curve (runs in a worker process)."""
    from obliviate.data.benchmark import forget_people
    from obliviate.evals import curves
    from obliviate.methods import METHODS

    torch.set_num_threads(1)
    cfg = RunConfig(**cfg_json)
    bench, target = load_cached(cfg)
    method = METHODS.get(name)(cfg.method_config(name))
    unlearn = lambda model, sub: method.unlearn(model, sub, seed=cfg.seed)  # noqa: E731
    if kind == "sustainability":
        return curves.sustainability(unlearn, target, bench, cfg.eval.sustainability_requests, gold)
    subsets = {f: forget_people(cfg.data, f) for f in cfg.eval.scalability_fractions
               if f < cfg.data.forget_fraction}
    return curves.scalability(unlearn, target, bench, subsets, gold)


def stage_curves(cfg: RunConfig, bench: Benchmark, results: dict[str, dict]) -> tuple[dict, dict]:
    """MUSE scalability and sustainability for every method, two jobs at a time.

    The scalability point at data.forget_fraction is the main result itself, so it is not rerun.
    """
    from obliviate.evals.curves import gold_ratio_table

    gold = gold_ratio_table(bench, results["gold"]["forget_truth_ratio"].per_example)
    jobs = [(name, kind) for name in cfg.methods for kind in ("scalability", "sustainability")]
    # A curve is cached like a model: keyed by the method's artefact and the evaluation settings.
    # Multiple-choice settings do not touch the curves: left out of the key, older caches stay valid.
    key = config_hash(cfg.eval.model_dump(mode="json", exclude=CHOICE_FIELDS))
    paths = {(n, k): run_dir(cfg) / "cache" / f"curve-{k}-{method_dir(cfg, n).name}-{key}.json" for n, k in jobs}
    curves = {job: json.loads(paths[job].read_text()) for job in jobs if paths[job].is_file()}
    todo = [job for job in jobs if job not in curves]
    if todo:
        args = [(config_to_dict(cfg), name, kind, gold) for name, kind in todo]
        with process_pool(len(todo), cfg.threads) as pool:
            for job, points in zip(todo, pool.map(_curve_job, *zip(*args))):
                curves[job] = points
                atomic_write_text(paths[job], json.dumps(points))
    keys = ("forget_acc", "retain_acc", "world_acc", "forget_rouge", "forget_quality")
    main_point = lambda name: {"fraction": cfg.data.forget_fraction, "people": len(bench.people("forget")),  # noqa
                               **{k: results[name][k].value for k in keys}}
    scal = {"fractions": sorted({*cfg.eval.scalability_fractions, cfg.data.forget_fraction}),
            "methods": {n: [*curves[(n, "scalability")], main_point(n)] for n in cfg.methods}}
    sust = {"requests": cfg.eval.sustainability_requests,
            "methods": {n: curves[(n, "sustainability")] for n in cfg.methods}}
    return scal, sust


def stage_verdict(cfg: RunConfig, bench: Benchmark, models: dict) -> dict:
    """Every model but gold (and, with verdict.controls, the calibration controls) attacked and judged
    against the same attacks on gold: removed, suppressed, not forgotten or inconclusive, with the evidence."""
    from obliviate.attacks.controls import EXPECTED, build_controls

    candidates = {n: (lm, EXPECTED.get(n)) for n, lm in models.items() if n not in ("gold", "pretrained")}
    if cfg.verdict.controls:
        candidates |= build_controls(cfg, bench, models["target"])
    gold = attack_all(models["gold"], bench, cfg)
    out = {}
    for name, (lm, expected) in candidates.items():
        out[name] = judge_against_gold(attack_all(lm, bench, cfg), gold, cfg, getattr(lm, "changes_weights", True))
        if expected is not None:
            out[name] |= {"control": True, "expected": expected, "as_expected": out[name]["verdict"] == expected}
    return out


def attack_all(lm, bench: Benchmark, cfg: RunConfig) -> tuple[dict, dict, dict]:
    """(attack recoveries, membership scores, skipped membership tests) of one model on bench's forget split."""
    from obliviate.attacks import run_attacks
    from obliviate.attacks.membership import membership_scores

    mia, skipped = membership_scores(lm, bench, cfg.attacks.passages, cfg.eval.mia_k, cfg.eval.verbmem_prefix_words)
    return run_attacks(lm, bench, cfg.attacks), mia, skipped


def judge_against_gold(cand: tuple, gold: tuple, cfg: RunConfig, changes_weights: bool = True) -> dict:
    from obliviate.attacks import judge

    verdict = judge(cand[0], gold[0], cfg.verdict, changes_weights, cand[1], gold[1])
    verdict["skipped"] |= cand[2]
    return verdict


def run(cfg: RunConfig) -> dict:
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    timings, start = {}, time.perf_counter()
    bench = stage_data(cfg)
    timings["data"] = time.perf_counter() - start
    models = stage_models(cfg, bench)
    if cfg.pretrained is not None:  # the untouched model: the reference for pretrained knowledge
        from obliviate.models.load import load_language_model

        models = {"pretrained": load_language_model(cfg.pretrained.model, "pretrained", cfg.pretrained.dtype), **models}
    timings["models"] = time.perf_counter() - start - timings["data"]
    facts = {}
    for name in cfg.methods:
        t = time.perf_counter()
        models[name], facts[name] = stage_unlearn(cfg, name, models["target"], bench, models["gold"])
        timings[f"unlearn:{name}"] = time.perf_counter() - t
    t = time.perf_counter()
    samples: dict = {}
    results = evaluate_all(models, bench, samples, cfg.eval)
    timings["evaluation"] = time.perf_counter() - t
    extra = {}
    # The curves cut the built-in people into nested forget sets; loaded data has no such nesting.
    if cfg.eval.curves and cfg.methods and cfg.data.path is None:
        t = time.perf_counter()
        extra["scalability"], extra["sustainability"] = stage_curves(cfg, bench, results)
        timings["curves"] = time.perf_counter() - t
    if cfg.verdict.enabled:
        t = time.perf_counter()
        extra["verdict"] = stage_verdict(cfg, bench, models)
        timings["verdict"] = time.perf_counter() - t
    timings["total"] = time.perf_counter() - start
    report = build_report(cfg, bench, results, facts, timings, samples) | extra
    write_report(report, run_dir(cfg) / "report.json")
    write_html(report, run_dir(cfg) / "report.html")
    return report


def build_report(cfg: RunConfig, bench: Benchmark, results: dict[str, dict], facts: dict, timings: dict,
                 samples: dict) -> dict:
    first = next(iter(results.values()))
    return {
        "obliviate_report": 1,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "config": config_to_dict(cfg),
        "seed": cfg.seed,
        "environment": environment(),
        "benchmark": {s: len(bench.split(s)) for s in ("forget", "retain", "holdout", "world", "neighbours")}
        | {"forget_people": len(bench.people("forget")), "retain_people": len(bench.people("retain"))},
        "metrics": {k: {"higher_is_better": m.higher_is_better, "description": m.description}
                    for k, m in first.items()},
        "models": {name: {k: m.value for k, m in res.items()} for name, res in results.items()},
        "unavailable": {name: {k: m.description.removeprefix("n/a: ") for k, m in res.items() if m.value is None}
                        for name, res in results.items()},
        "per_example": {name: {k: m.per_example for k, m in res.items()} for name, res in results.items()},
        "unlearning": facts,
        "forget_samples": samples,
        "timings_s": {k: round(v, 2) for k, v in timings.items()},
    }


def write_report(report: dict, path: Path) -> None:
    atomic_write_text(path, json.dumps(report, indent=1, default=float) + "\n")
