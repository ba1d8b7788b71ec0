"""Run one unlearning method over several processes or GPUs with `accelerate launch`.

    accelerate launch --config_file configs/accelerate/ddp_gpu.yaml --num_processes 4 \
        -m obliviate.distributed_unlearn --config tiny --method npo_rt --set lora.r=8

The same as `obliviate unlearn`, made safe for many processes: the main process writes the
benchmark while the others wait, every process loads the run's target and gold models (train them
first with `obliviate train`), trains on its share of each batch (`models.train.optimize`), and
only the main process writes the result to the run's cache (and to `--out`). Without `accelerate
launch` it runs in one process (and trains missing models), with the same result up to rounding.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys

from obliviate.errors import ObliviateError


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m obliviate.distributed_unlearn", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", "-c", default="tiny", help="preset name or YAML file")
    parser.add_argument("--method", "-m", required=True, help="registered method name")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="config override, repeatable, e.g. --set lora.r=8")
    parser.add_argument("--out", default=None, help="also copy the unlearned model directory here")
    args = parser.parse_args(argv)
    try:
        run(args.config, args.method, args.overrides, args.out)
    except ObliviateError as err:
        print(f"error: {err}", file=sys.stderr)
        raise SystemExit(2) from None


def run(config: str, method: str, overrides: list[str], out: str | None = None) -> dict:
    import torch
    from accelerate import PartialState

    from obliviate.config import load_config
    from obliviate.pipeline import method_dir, models_dir, stage_data, stage_models, stage_unlearn

    state = PartialState(cpu=not torch.cuda.is_available())  # joins the process group under accelerate launch
    cfg = load_config(config, overrides)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    with state.main_process_first():  # one process writes the benchmark; the others then load it
        bench = stage_data(cfg)
    missing = [r for r in ("target", "gold") if not (models_dir(cfg) / r / "config.json").is_file()]
    if missing and state.num_processes > 1:
        # Training target and gold forks worker processes, which hang inside a process group.
        sets = "".join(f" --set {o}" for o in overrides)
        raise ObliviateError(f"the run has no trained {' and '.join(missing)} model yet; train them first with "
                             f"`obliviate train --config {config}{sets}`, then launch again")
    models = stage_models(cfg, bench)
    _, facts = stage_unlearn(cfg, method, models["target"], bench, models["gold"])
    state.wait_for_everyone()
    if state.is_main_process:
        path = method_dir(cfg, method)
        if out:
            shutil.copytree(path, out, dirs_exist_ok=True)
        summary = {"method": method, "path": str(path), "processes": state.num_processes,
                   **{k: facts.get(k) for k in ("steps", "stopped", "seconds", "last_loss")}}
        print(json.dumps(summary))
    return facts


if __name__ == "__main__":
    main()
