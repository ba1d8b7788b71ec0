"""Load and protection of `obliviate serve` in local mode, with and without the guard, side by side.

    python benchmarks/serve_load.py                          # tiny (200 concurrent) and smollm2 (32)
    python benchmarks/serve_load.py --models tiny --rounds 2 --out /tmp/serve_load.json

Per model (the preset's target, from the run cache or trained as `obliviate train` does), two
servers run on the same weights: *protected*, whose ledger holds one data request per forget
person (QA records and biography; submitted before the start, so all are `queued`), and
*unprotected* (`--no-protect`: no classifier, no audit). A third, *guard alone* (`--no-audit`),
runs only for the protection pass.

Load: bursts of `concurrency` chat requests (half forget questions, half retain, in the canonical
wording, greedy, 12 tokens) are sent at once through the official `openai` async client,
alternating protected / unprotected burst by burst so machine load falls on both alike. Reported:
errors, p50 / p99 latency, throughput (requests / s over the burst's wall time), and the ratio of
protected to unprotected throughput (goal >= 0.9).

Protection: every forget person's canonical questions and held-out paraphrases, and every retain
person's canonical questions, asked to each server: how many forget answers state the value
(`evals.qa.answer_recalled`) and the retain accuracy. The load average is recorded before and after.
Writes benchmarks/results/serve_load.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import httpx
import openai

from obliviate.config import load_config
from obliviate.evals.qa import answer_recalled
from obliviate.ledger import open_ledger, submit
from obliviate.pipeline import models_dir, stage_data, stage_models
from obliviate.requests import request_from_benchmark
from obliviate.runtime import environment
from obliviate.serve.process import ServerProcess

OUT = Path(__file__).parent / "results" / "serve_load.json"
CONCURRENCY = {"tiny": 200, "smollm2": 32}


def ledger_with_requests(bench, work: Path) -> str:
    """A SQLite ledger holding one queued data request per forget person."""
    work.mkdir(parents=True, exist_ok=True)
    db = f"sqlite:///{work / 'ledger.db'}"
    with open_ledger(db) as ledger:
        for i, person in enumerate(bench.people("forget")):
            file = request_from_benchmark(bench.restrict_forget({person}), work / "requests" / f"{i:03d}")
            with ledger.begin() as s:
                submit(s, file, actor="benchmark")
    return db


ERRORS: list[str] = []  # the first few error messages, kept in the result


TOKENS: dict[str, int] = {}  # completion tokens per server url


async def ask_all(url: str, questions: list[str], concurrency: int) -> tuple[list[str | None], list[float], float]:
    """(answers, None on error; per-request latency; wall time) of the questions, `concurrency` at a time;
    completion tokens are added up in TOKENS[url]."""
    client = openai.AsyncOpenAI(base_url=f"{url}/v1", api_key="unused", max_retries=0, timeout=600,
                                http_client=httpx.AsyncClient(limits=httpx.Limits(max_connections=concurrency)))
    gate = asyncio.Semaphore(concurrency)

    async def one(q: str) -> tuple[str | None, float]:
        async with gate:
            t = time.perf_counter()
            try:
                out = await client.chat.completions.create(model="target", messages=[{"role": "user", "content": q}],
                                                           temperature=0, max_tokens=12)
                TOKENS[url] = TOKENS.get(url, 0) + out.usage.completion_tokens
                return out.choices[0].message.content, time.perf_counter() - t
            except openai.OpenAIError as err:
                if len(ERRORS) < 5:
                    ERRORS.append(f"{type(err).__name__}: {str(err)[:300]}")
                return None, time.perf_counter() - t

    start = time.perf_counter()
    results = await asyncio.gather(*(one(q) for q in questions))
    wall = time.perf_counter() - start
    await client.close()
    return [a for a, _ in results], [s for _, s in results], wall


def bursts_of(bench, size: int, rounds: int) -> list[list[str]]:
    """`rounds` bursts of `size` questions, half forget and half retain, none repeated across bursts
    (later phrasings once the records run out): the classifier's per-prompt cache never helps."""
    forget, retain = bench.forget, bench.retain
    out, half = [], size // 2
    for r in range(rounds):
        def pick(records, i):
            rec = records[i % len(records)]
            forms = rec.get("phrasings") or [rec["question"]]
            return forms[(i // len(records)) % len(forms)]
        idx = range(r * half, (r + 1) * half)
        out.append([q for i in idx for q in (pick(forget, i), pick(retain, i))][:size])
    return out


def percentile(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(q * (len(xs) - 1))))]


def load_rows(servers: dict, bursts: list[list[str]], concurrency: int) -> dict:
    per: dict[str, dict] = {name: {"latencies": [], "walls": [], "errors": 0, "requests": 0} for name in servers}
    for questions in bursts:
        for name, server in servers.items():  # alternate burst by burst
            before = TOKENS.get(server.url, 0)
            answers, lat, wall = asyncio.run(ask_all(server.url, questions, concurrency))
            row = per[name]
            row["tokens"] = row.get("tokens", 0) + TOKENS.get(server.url, 0) - before
            row["latencies"] += lat
            row["walls"].append(wall)
            row["errors"] += sum(a is None for a in answers)
            row["requests"] += len(answers)
    out = {}
    for name, row in per.items():
        out[name] = {"requests": row["requests"], "errors": row["errors"],
                     "p50_s": round(statistics.median(row["latencies"]), 3),
                     "p99_s": round(percentile(row["latencies"], 0.99), 3),
                     "throughput_rps": round(row["requests"] / sum(row["walls"]), 2),
                     "completion_tokens_per_s": round(row["tokens"] / sum(row["walls"]), 1),
                     "mean_completion_tokens": round(row["tokens"] / max(1, row["requests"] - row["errors"]), 2),
                     "burst_walls_s": [round(w, 2) for w in row["walls"]]}
    return out


def protection_rows(servers: dict, bench, concurrency: int) -> dict:
    forget = [(r["question"], r["answer"]) for r in bench.forget]
    paraphrased = [(r["paraphrased_question"], r["answer"]) for r in bench.forget if r.get("paraphrased_question")]
    retain = [(r["question"], r["answer"]) for r in bench.retain]
    out = {}
    for name, server in servers.items():
        row = {}
        for group, pairs in (("forget", forget), ("forget_paraphrased", paraphrased), ("retain", retain)):
            answers, _, _ = asyncio.run(ask_all(server.url, [q for q, _ in pairs], concurrency))
            hits = sum(bool(a) and answer_recalled(a, value) for a, (_, value) in zip(answers, pairs))
            row[group] = {"n": len(pairs), "stated": hits, "rate": round(hits / len(pairs), 4),
                          "errors": sum(a is None for a in answers)}
        out[name] = row
    return out


def run_model(preset: str, rounds: int, threads: int, work: Path, guard_options: list[str] = ()) -> dict:
    cfg = load_config(preset, [f"threads={threads}"])
    bench = stage_data(cfg)
    stage_models(cfg, bench, ("target",))
    target = str(models_dir(cfg) / "target")
    db = ledger_with_requests(bench, work / preset)
    common = ["--model", target, "--model-name", "target", "--threads", str(threads),
              *[x for o in guard_options for x in ("--guard-option", o)]]
    servers = {"protected": ServerProcess([*common, "--db", db], work / f"{preset}-protected.log"),
               "unprotected": ServerProcess([*common, "--no-protect", "--db", f"sqlite:///{work / preset / 'u.db'}"],
                                            work / f"{preset}-unprotected.log")}
    try:
        concurrency = CONCURRENCY[preset]
        bursts = bursts_of(bench, concurrency, rounds)
        asyncio.run(ask_all(servers["protected"].url, ["Who are you?"] * 4, 4))  # warm both (kernels, caches)
        asyncio.run(ask_all(servers["unprotected"].url, ["Who are you?"] * 4, 4))
        load = load_rows(servers, bursts, concurrency)
        metrics = httpx.get(f"{servers['protected'].url}/metrics").text
        flags = [line for line in metrics.splitlines() if line.startswith(("obliviate_guard_flags_total",
                                                                           "obliviate_guard_blocks_total"))]
        servers["guard_alone"] = ServerProcess([*common, "--no-audit", "--db", db], work / f"{preset}-guard.log")
        protection = protection_rows(servers, bench, concurrency)
    finally:
        for s in servers.values():
            s.stop()
    return {"concurrency": concurrency, "rounds": rounds, "targets": len(bench.people("forget")),
            "load": load, "throughput_ratio_protected_over_unprotected": round(
                load["protected"]["throughput_rps"] / load["unprotected"]["throughput_rps"], 3),
            "token_throughput_ratio_protected_over_unprotected": round(
                load["protected"]["completion_tokens_per_s"] / load["unprotected"]["completion_tokens_per_s"], 3),
            "guard_counters_after_load": flags, "protection": protection}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="tiny,smollm2")
    parser.add_argument("--rounds", type=int, default=3, help="bursts per server and model")
    parser.add_argument("--threads", type=int, default=2, help="torch threads of each server")
    parser.add_argument("--guard-option", action="append", default=[], help="KEY=VALUE for the guard (serve's)")
    parser.add_argument("--out", default=str(OUT))
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="obliviate-serve-load-"))
    result = {"benchmark": "serve_load", "guard_options": args.guard_option, "load_average_before": [round(x, 2) for x in os.getloadavg()],
              "cores": os.cpu_count(), "models": {}}
    start = time.perf_counter()
    try:
        for preset in args.models.split(","):
            result["models"][preset] = run_model(preset, args.rounds, args.threads, work, args.guard_option)
            print(json.dumps({preset: result["models"][preset]}, indent=1), flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    result |= {"errors_seen": ERRORS, "seconds": round(time.perf_counter() - start, 1),
               "load_average_after": [round(x, 2) for x in os.getloadavg()], "environment": environment()}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=1) + "\n")
    for preset, m in result["models"].items():
        print(f"\n{preset}: {m['concurrency']} concurrent x {m['rounds']} bursts; throughput ratio "
              f"{m['throughput_ratio_protected_over_unprotected']} (goal >= 0.9), in completion tokens "
              f"{m['token_throughput_ratio_protected_over_unprotected']}")
        for name, row in m["load"].items():
            print(f"  {name:12s} errors {row['errors']}/{row['requests']}  p50 {row['p50_s']} s  p99 {row['p99_s']} s"
                  f"  {row['throughput_rps']} req/s  {row['completion_tokens_per_s']} tok/s "
                  f"({row['mean_completion_tokens']} per answer)")
        for name, row in m["protection"].items():
            print(f"  {name:12s} " + "  ".join(f"{g} {v['stated']}/{v['n']}" for g, v in row.items()))


if __name__ == "__main__":
    main()
