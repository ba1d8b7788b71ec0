"""`sisa` and `s3t` inside `obliviate run` on micro: they train on world + forget + retain, delete the
forget split, are evaluated like every other method, and a second run reloads their stores (slow:
trains the micro target and gold, about a minute on two busy cores)."""

import pytest
import torch

from obliviate.config import load_config
from obliviate.methods.exact import EnsembleLanguageModel
from obliviate.pipeline import method_dir, run, stage_data, stage_models, stage_unlearn

ARGS = ["methods=[sisa,s3t]", "eval.curves=false", "threads=1",
        "method_args.sisa={shards: 2, slices: 2, epochs: 3, base_epochs: 10}",
        "method_args.s3t={shards: 2, slices: 2, sequences: 2, epochs: 3, base_epochs: 10}"]


@pytest.mark.slow
def test_exact_methods_run_in_the_main_job_and_reload(tmp_path):
    torch.set_num_threads(1)
    cfg = load_config("micro", [f"output_dir={tmp_path}", *ARGS])
    report = run(cfg)
    for name in ("sisa", "s3t"):
        facts = report["unlearning"][name]
        assert facts["items_deleted"] == 4 * 31  # 4 forget people x (10 questions x 3 phrasings + 1 biography)
        assert report["models"][name]["forget_acc"] <= report["models"]["target"]["forget_acc"]
        assert (method_dir(cfg, name) / "lineage.json").is_file()
    assert report["unlearning"]["sisa"]["delete"]["steps"] > 0
    assert report["unlearning"]["s3t"]["delete"]["steps"] == 0 and report["unlearning"]["s3t"]["drain"]["steps"] > 0
    bench = stage_data(cfg)
    target = stage_models(cfg, bench, ("target",))["target"]
    again, facts = stage_unlearn(cfg, "sisa", target, bench)
    assert isinstance(again, EnsembleLanguageModel) and facts == report["unlearning"]["sisa"]
