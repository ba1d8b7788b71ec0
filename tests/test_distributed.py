"""`accelerate launch` over 2 CPU processes (gloo) gives the single-process result.

The launch is the README's multi-GPU command with `--num_processes 2`. Each process takes half of
every batch, log-probabilities are all-gathered so both compute the whole batch's loss, and DDP
averages the gradients (`models.train.optimize`): mathematically the single-process step. What
remains is float32 rounding (sums over rows and processes in another order, ~1e-7 relative),
which 20 Adam steps amplify to a measured max |Δweight| of 1e-7 to 5e-6 on micro; the tolerance, 1e-4, is
20x that and 100x below how far the weights move (> 1e-2), so a wrong gradient (e.g. one half's,
or twice the whole) fails it.
"""

import json
import os
import re
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from obliviate.config import load_config
from obliviate.methods import METHODS
from obliviate.models.hf import HFLanguageModel
from obliviate.pipeline import run_dir, stage_data, stage_models

ROOT = Path(__file__).resolve().parents[1]
LAUNCH = "accelerate launch --config_file configs/accelerate/ddp.yaml --num_processes"
METHOD = "gradient_difference"
SETS = ["train.epochs=3", f"method_args.{METHOD}.steps=20", f"method_args.{METHOD}.eval_every=0"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def micro(tmp_path_factory):
    out = tmp_path_factory.getbasetemp() / "micro-infra"  # shared with test_unlearn_infra.py
    cfg = load_config("micro", [f"output_dir={out}", *SETS])
    bench = stage_data(cfg)
    return cfg, bench, stage_models(cfg, bench)  # trained here: a launch needs them cached


def test_readme_shows_the_launch_this_test_runs():
    readme = (ROOT / "README.md").read_text()
    assert re.search(re.escape(LAUNCH) + r" \d+ -m obliviate\.distributed_unlearn", readme)


def test_two_processes_match_one(micro, tmp_path):
    cfg, bench, models = micro
    out = tmp_path / "ddp"
    cmd = [sys.executable, "-m", "accelerate.commands.launch", *LAUNCH.split()[2:], "2",
           "--main_process_port", str(free_port()), "-m", "obliviate.distributed_unlearn",
           "--config", "micro", "--method", METHOD, "--out", str(out),
           *[a for s in [f"output_dir={cfg.output_dir}", *SETS] for a in ("--set", s)]]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": ""}
    cache = run_dir(cfg) / "cache"
    before = set(os.listdir(cache))
    done = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    summary = json.loads(done.stdout.strip().splitlines()[-1])  # printed by the main process only
    assert summary["processes"] == 2 and summary["steps"] == 20 and summary["stopped"] == "budget"
    # Only the main process wrote: one new method directory, nothing half-written beside it.
    assert set(os.listdir(cache)) - before == {Path(summary["path"]).name}

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        method = METHODS.get(METHOD)(cfg.method_config(METHOD))
        single = method.unlearn(models["target"], bench, seed=cfg.seed).model.state_dict()
    finally:
        torch.set_num_threads(threads)
    ddp = HFLanguageModel.load(out).model.state_dict()
    target = models["target"].model.state_dict()
    diff = max((single[k] - ddp[k]).abs().max().item() for k in single)
    moved = max((single[k] - target[k]).abs().max().item() for k in single)
    assert moved > 1e-2 and diff < 1e-4, (diff, moved)
    facts = json.loads((out / "unlearning.json").read_text())
    assert facts["last_loss"] == pytest.approx(method.losses[-1], abs=1e-4)
