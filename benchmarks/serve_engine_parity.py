"""The serving engine alone, protected and unprotected, in one process: does the guard cost batch time?

    python benchmarks/serve_engine_parity.py [--preset smollm2] [--bursts 4] [--size 32]

Loads the preset's target once and runs the same bursts (as benchmarks/serve_load.py builds them)
through two `serve.engine.Engine`s, alternating: one with the ledger's protection (one data request
per forget person), one without. Prints each batch's groups (rows, flagged rows, seconds, longest
answer in tokens) and each burst's wall time; writes benchmarks/results/serve_engine_parity.json.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import torch

from serve_load import bursts_of, ledger_with_requests  # noqa: I001 - the sibling benchmark's helpers

from obliviate.config import load_config
from obliviate.data import format_prompt
from obliviate.ledger import open_ledger
from obliviate.models.load import load_language_model
from obliviate.pipeline import models_dir, stage_data
from obliviate.serve.engine import Engine, Job, Params, render_prompt
from obliviate.serve.shield import Shield

OUT = Path(__file__).parent / "results" / "serve_engine_parity.json"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="smollm2")
    parser.add_argument("--bursts", type=int, default=4)
    parser.add_argument("--size", type=int, default=32)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    cfg = load_config(args.preset)
    bench = stage_data(cfg)
    lm = load_language_model(str(models_dir(cfg) / "target"))
    shield = Shield(open_ledger(ledger_with_requests(bench, Path(tempfile.mkdtemp()) / "ledger")))
    load_before, rows = os.getloadavg(), []
    for b, questions in enumerate(bursts_of(bench, args.size, args.bursts)):
        for protect in (False, True):
            engine = Engine(lm, shield=shield if protect else None)
            start = time.perf_counter()
            jobs = []
            for q in questions:
                ids, prompt = render_prompt(lm.tokenizer, [{"role": "user", "content": q}])
                jobs.append(engine.submit(Job(ids, prompt, Params(12, 0.0, 1.0, ()), format_prompt(q) if protect
                                              else None, shield.snapshot if protect else None)))
            answers = [j.future.result()[0] for j in jobs]
            wall = time.perf_counter() - start
            engine.close()
            longest = max(len(lm.tokenizer.encode(a, add_special_tokens=False)) for a in answers)
            rows.append({"burst": b, "protected": protect, "seconds": round(wall, 2), "batches": engine.batches,
                         "flagged": sum(j.flagged for j in jobs), "longest_answer_tokens": longest})
            print(rows[-1], flush=True)
    total = {p: round(sum(r["seconds"] for r in rows if r["protected"] == p), 2) for p in (False, True)}
    result = {"preset": args.preset, "threads": args.threads, "rows": rows,
              "seconds_unprotected": total[False], "seconds_protected": total[True],
              "load_average_before": [round(x, 2) for x in load_before],
              "load_average_after": [round(x, 2) for x in os.getloadavg()]}
    OUT.write_text(json.dumps(result, indent=1) + "\n")
    print(f"unprotected {total[False]} s, protected {total[True]} s over {args.bursts} bursts of {args.size}")


if __name__ == "__main__":
    main()
