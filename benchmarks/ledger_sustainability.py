"""Sequential forget requests at scale (MUSE's sustainability, the way operators meet it): N single-person
requests against the tiny target, submitted in arrival order to a ledger, processed by the worker in
batches; the model is measured after every job.

    python benchmarks/ledger_sustainability.py                              # 100 requests, batches of 10
    python benchmarks/ledger_sustainability.py --requests 4 --batch-size 2 --out /tmp/smoke.json   # smoke test

Each request is one forget person of the benchmark (its QA records and biography), with the holdout
people as the reference and the retain split as what to keep (`requests.request_from_benchmark` on
the benchmark restricted to that person). Requests arrive `--batch-size` at a time; after each
arrival the worker runs (`run_worker(once=True)`), so each arrival is one job on the current version.

Written to --out (default benchmarks/results/ledger_sustainability.json), with the report section
beside it (same name, .html) and added to the run's report (runs/<config>/report.html, when that
run exists: `evals.report_ledger`):
- per job: the model version, the requests' outcomes and verdicts, and that version's greedy recall
  on every forget person served so far, on the retain split and on the world facts;
- worker throughput: requests per hour of worker time, on `--threads` cores (2 by default);
- time from submission to `suppressed` (the commit that puts the facts in the guard; goal < 1 s) and
  from submission to `removed` (the end of the job that removed it);
- the load average before and after (other jobs on the machine slow everything down).

The tiny preset has 50 forget people; more requests than that raise `data.people` so that the
forget split holds one person per request (recorded in the output's config).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import statistics
import sys
import time
from pathlib import Path

import sqlalchemy as sa
import torch

from obliviate.config import config_to_dict, load_config
from obliviate.ledger import Event, Request, current_model_version, directory_sha256, open_ledger, protected_facts
from obliviate.ledger import register_model_version, submit
from obliviate.ledger.worker import run_worker
from obliviate.methods.base import slice_accuracy
from obliviate.models.hf import HFLanguageModel
from obliviate.evals.report import write_html
from obliviate.evals.report_ledger import KEY, attach, ledger_section
from obliviate.pipeline import models_dir, run_dir, stage_data, stage_models
from obliviate.requests import request_from_benchmark
from obliviate.runtime import environment

ROOT = Path(__file__).resolve().parents[1]


def config_for(name: str, overrides: list[str], requests: int, threads: int):
    cfg = load_config(name, [*overrides, f"threads={threads}"])
    needed = math.ceil(requests / cfg.data.forget_fraction) + 1
    if round(cfg.data.people * cfg.data.forget_fraction) < requests and not any(o.startswith("data.people=")
                                                                                for o in overrides):
        cfg = load_config(name, [*overrides, f"threads={threads}", f"data.people={needed}"])
    return cfg


def evaluate(path: str, bench, served: list[str]) -> dict:
    lm = HFLanguageModel.load(Path(path), name="current")
    forget = [r for r in bench.forget if r["person"] in set(served)]
    return {"forget_recall_served": round(slice_accuracy(lm, forget), 4) if forget else None,
            "retain_acc": round(slice_accuracy(lm, bench.retain), 4),
            "world_acc": round(slice_accuracy(lm, bench.world), 4)}


def summary_of(values: list[float]) -> dict:
    if not values:
        return {"n": 0, "median": None, "max": None}
    return {"n": len(values), "median": round(statistics.median(values), 3), "max": round(max(values), 3),
            "argmax": values.index(max(values)), "values": [round(v, 3) for v in values]}


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=100, help="single-person requests to submit")
    parser.add_argument("--batch-size", type=int, default=10, help="requests arriving together = one job")
    parser.add_argument("--method", default="npo_kl")
    parser.add_argument("--config", default="tiny")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--threads", type=int, default=2, help="torch threads (the cores it is measured on)")
    parser.add_argument("--work", default=str(ROOT / "runs" / "ledger_sustainability"),
                        help="scratch: ledger, request files, model versions (emptied first)")
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "ledger_sustainability.json"))
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)

    cfg = config_for(args.config, args.overrides, args.requests, args.threads)
    bench = stage_data(cfg)
    people = bench.people("forget")[: args.requests]
    if len(people) < args.requests:
        raise SystemExit(f"error: the forget split holds {len(people)} people, fewer than --requests "
                         f"{args.requests}; raise data.people")
    target = models_dir(cfg) / "target"
    stage_models(cfg, bench, ("target",))
    work = Path(args.work)
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    files = [request_from_benchmark(bench.restrict_forget({p}), work / "requests" / f"{i:03d}")
             for i, p in enumerate(people)]
    ledger = open_ledger(str(work / "ledger.db"))
    with ledger.begin() as s:
        base = register_model_version(s, path=str(target.resolve()), weights_sha256=directory_sha256(target),
                                      actor="benchmark", parent_id=None, details={"base": True})
        base_path = base.path
    load_before = os.getloadavg()
    points = [{"served": 0, "model_version": base.id, "outcomes": {}, **evaluate(base_path, bench, [])}]
    suppress_s, removed_s, worker_s, ids = [], [], 0.0, []
    print(f"{args.requests} requests, batches of {args.batch_size}: base {points[0]}", flush=True)
    for start in range(0, len(files), args.batch_size):
        chunk = []
        for f in files[start:start + args.batch_size]:
            t0 = time.perf_counter()
            with ledger.begin() as s:
                rid = submit(s, f, actor="benchmark").request.id
            with ledger.begin() as s:  # the guard reads the committed ledger: it protects the facts from here on
                assert any(x["request_id"] == rid for x in protected_facts(s))
            suppress_s.append(time.perf_counter() - t0)
            chunk.append(rid)
        t0 = time.perf_counter()
        run_worker(ledger, once=True, batch_window_s=0, method=args.method, cfg=cfg, versions_dir=work / "versions",
                   batch_size=args.batch_size, retrain=False, log=lambda line: print("  " + line, flush=True))
        worker_s += time.perf_counter() - t0
        ids += chunk
        with ledger.begin() as s:
            rows = [s.get(Request, i) for i in chunk]
            outcomes = {st: sum(r.status == st for r in rows) for st in sorted({r.status for r in rows})}
            verdicts = sorted({(r.evidence or {}).get("after", {}).get("verdict") or r.status for r in rows})
            for r in rows:
                done = s.scalars(sa.select(Event.at).where(Event.request_id == r.id, Event.type == "removed")).first()
                if done is not None:
                    removed_s.append((done - r.received_at).total_seconds())
            current = current_model_version(s)
            path, version_id = current.path, current.id
        point = {"served": len(ids), "model_version": version_id, "outcomes": outcomes, "verdicts": verdicts,
                 **evaluate(path, bench, people[: len(ids)])}
        points.append(point)
        print(f"served {len(ids)}: {point}", flush=True)
    load_after = os.getloadavg()
    result = {
        "benchmark": "ledger_sustainability", "smoke_test": args.requests < 100, "requests": args.requests,
        "batch_size": args.batch_size, "method": args.method, "config": config_to_dict(cfg), "points": points,
        "throughput": {"requests_per_hour": round(args.requests / worker_s * 3600, 1), "worker_seconds":
                       round(worker_s, 1), "jobs": len(points) - 1, "threads": args.threads},
        "latency": {"to_suppressed_s": summary_of(suppress_s) | {"goal": 1.0,
                                                                 "all_under_goal": max(suppress_s) < 1.0},
                    "to_removed_s": summary_of(removed_s)},
        "load_average": {"before": [round(x, 2) for x in load_before], "after": [round(x, 2) for x in load_after],
                         "cores": os.cpu_count()},
        "environment": environment()}
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1) + "\n")
    page = out.with_suffix(".html")  # the section alone, as the run's report shows it
    page.write_text("<!DOCTYPE html><meta charset=\"utf-8\"><title>ledger sustainability</title>"
                    + ledger_section({KEY: result}) + "\n")
    report = attach(run_dir(load_config(args.config)), result)
    if report is not None:
        write_html(report, run_dir(load_config(args.config)) / "report.html")
    print(f"wrote {out}, {page}" + (f"; added to {run_dir(load_config(args.config)) / 'report.html'}" if report else
                                    f"; no report.json in {run_dir(load_config(args.config))} to add it to"))
    ledger.close()
    return result


if __name__ == "__main__":
    sys.exit(main() and 0)
