"""Per-request latency of the inference-time guards vs the unguarded tiny target, by number of targets.

    python benchmarks/guard_latency.py [--repeats 3] [--threads 1]
        -> benchmarks/results/guard_latency.json and guard_latency.png

Each request is one prompt (batch 1) generating up to 24 new tokens through the `LanguageModel`
API. Prompts: the names of the 10 forget people (flagged by every store that holds them) and of
10 retain people (not flagged), as in MUSE VerbMem, so the tiny model continues a biography for the
whole 24 tokens instead of stopping after a 2-token answer. Stores of 1, 10, 100, 1,000 and 10,000
targets hold the forget people first, then synthetic people (`guards.synthetic`), embedded once;
each store's classifier is calibrated like `unlearn` does and then runs uncached (every request
embeds its prompt). Guards are fitted once on the benchmark (ECO's sigma, thresholds). All
configurations are interleaved in every repeat so machine load hits them alike; per-request time is
the median over prompts and repeats. Overhead = guarded - unguarded median, and the acceptance
figure is overhead(1,000) / overhead(10) per guard (issue 6: <= 1.5).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from pathlib import Path

import numpy as np
import torch

SIZES = (1, 10, 100, 1000, 10_000)
KINDS = ("eco", "guard", "alu")


def plot(results: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sizes = [row["targets"] for row in results["rows"]]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 4))
    ax1.plot(sizes, [r["unguarded_ms"] for r in results["rows"]], "k--o", label="unguarded")
    for kind in KINDS:
        ax1.plot(sizes, [r[f"{kind}_ms"] for r in results["rows"]], "-o", label=kind)
        ax2.plot(sizes, [r[f"{kind}_ratio"] for r in results["rows"]], "-o", label=kind)
    ax2.axhline(1.0, color="k", ls="--", lw=1)
    for ax, label in ((ax1, "median latency per request (ms)"), (ax2, "latency / unguarded latency (x)")):
        ax.set_xscale("log")
        ax.set_xlabel("forget targets in the store (count, log scale)")
        ax.set_ylabel(label)
        ax.set_ylim(bottom=0)  # from zero, so a flat line reads as flat
        ax.grid(alpha=0.3)
        ax.legend(loc="lower right")
    fig.suptitle(f"Guard latency, tiny target, batch 1, up to {results['max_new_tokens']} new tokens")
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1, help="torch threads (1: steadier on a shared machine)")
    parser.add_argument("--sizes", type=int, nargs="+", default=list(SIZES), help="store sizes (counts)")
    parser.add_argument("--out", default="benchmarks/results/guard_latency.json")
    parser.add_argument("--plot-only", action="store_true", help="redraw the PNG from an existing --out JSON")
    args = parser.parse_args()
    if args.plot_only:
        plot(json.loads(Path(args.out).read_text()), Path(args.out).with_suffix(".png"))
        return
    sizes = sorted(args.sizes)
    torch.set_num_threads(args.threads)

    from obliviate.config import load_config
    from obliviate.guards import PromptClassifier, TargetStore
    from obliviate.guards.base import _prompts
    from obliviate.guards.synthetic import synthetic_targets
    from obliviate.methods import METHODS
    from obliviate.pipeline import stage_data, stage_models

    load_start = os.getloadavg()
    cfg = load_config("tiny", [])
    bench = stage_data(cfg)
    target = stage_models(cfg, bench, ("target",))["target"]
    start = time.perf_counter()
    fitted = {kind: METHODS.get(kind)().unlearn(target, bench, seed=cfg.seed) for kind in KINDS}
    fit_s = time.perf_counter() - start
    base_store = fitted["eco"].classifier.store
    start = time.perf_counter()
    extra = synthetic_targets(max(0, sizes[-1] - len(base_store)), seed=0, taken=set(bench.people("forget")) |
                              set(bench.people("retain")) | set(bench.people("holdout")))
    extra_store = TargetStore(extra, base_store.embedder)
    full = TargetStore([*base_store.targets, *extra], base_store.embedder,
                       np.concatenate([base_store.matrix, extra_store.matrix]))
    embed_s = time.perf_counter() - start
    negatives = _prompts([*bench.retain, *bench.world])
    models: dict[int, dict] = {}
    for n in sizes:
        clf = PromptClassifier(full.subset(n), top_k=fitted["eco"].config.top_k)
        clf.calibrate(negatives[::2], fitted["eco"].config.fpr)  # cached embeddings: calibration is not timed
        clf.cache = False  # every timed request embeds its prompt
        models[n] = {"unguarded": target, **{k: type(g)(g.base, clf, g.config, g.name, g.state)
                                             for k, g in fitted.items()}}
    forget_names, retain_names = bench.people("forget")[:10], bench.people("retain")[:10]
    prompts = [*forget_names, *retain_names]
    times: dict[tuple[int, str], list[float]] = {}
    max_new = 24
    for _ in range(args.repeats):
        for n in sizes:
            for name, lm in models[n].items():
                for i, p in enumerate(prompts):
                    t = time.perf_counter()
                    lm.generate([p], max_new)
                    seconds = time.perf_counter() - t
                    times.setdefault((n, name), []).append(seconds)
                    times.setdefault((n, name, i < len(forget_names)), []).append(seconds)
    outputs = {name: lm.generate(prompts[:2], max_new) for name, lm in models[sizes[-1]].items()}
    new_tokens = [len(target.tokenizer.encode(g, add_special_tokens=False)) for g in target.generate(prompts, max_new)]
    rows = []
    for n in sizes:
        row = {"targets": n, "unguarded_ms": round(1000 * statistics.median(times[(n, "unguarded")]), 2)}
        for kind in KINDS:
            ms = 1000 * statistics.median(times[(n, kind)])
            row[f"{kind}_ms"] = round(ms, 2)
            row[f"{kind}_ratio"] = round(ms / row["unguarded_ms"], 3)
            row[f"{kind}_overhead_ms"] = round(ms - row["unguarded_ms"], 2)
            for forget, label in ((True, "forget_prompts"), (False, "retain_prompts")):
                ratio = statistics.median(times[(n, kind, forget)]) / statistics.median(times[(n, "unguarded", forget)])
                row[f"{kind}_ratio_{label}"] = round(ratio, 3)
        rows.append(row)
    by_n = {r["targets"]: r for r in rows}
    results = {
        "what": "median per-request latency, batch 1, generate(max_new_tokens=24), tiny target; prompts = 10 "
                "forget-person names (flagged) + 10 retain-person names (not flagged), biography continuations",
        "max_new_tokens": max_new,
        "unguarded_new_tokens_mean": round(sum(new_tokens) / len(new_tokens), 1),
        "repeats": args.repeats, "requests_per_point": args.repeats * len(prompts),
        "torch_threads": args.threads, "cpu_count": os.cpu_count(),
        "load_average_start": [round(x, 2) for x in load_start],
        "load_average_end": [round(x, 2) for x in os.getloadavg()],
        "machine_note": "2-core CPU shared with other jobs during the run (see load averages); "
                        "configurations were interleaved in every repeat so load hits them alike",
        "setup_seconds": {"fit_guards": round(fit_s, 1), f"embed_{sizes[-1]}_targets": round(embed_s, 1)},
        "rows": rows,
        "overhead_ratio_1000_vs_10": {k: round(by_n[1000][f"{k}_overhead_ms"] / by_n[10][f"{k}_overhead_ms"], 3)
                                      for k in KINDS} if {10, 1000} <= set(by_n) else None,
        "acceptance": "overhead at 1,000 targets <= 1.5 x overhead at 10 targets",
        f"sample_outputs_at_{sizes[-1]}": outputs,
        "note": "on the tiny model the MiniLM prompt embedding dominates the overhead; the issue's 25 % bound "
                "applies to SmolLM2-135M-Instruct, not measured here",
    }
    print(json.dumps(results, indent=1))
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=1) + "\n")
    plot(results, out.with_suffix(".png"))


if __name__ == "__main__":
    main()
