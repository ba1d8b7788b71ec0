"""`obliviate forget` + `obliviate verify` on a saved micro target, and their bad-input errors (issue 17)."""

import json

import pytest
import torch
from typer.testing import CliRunner

from obliviate.cli import app
from obliviate.config import load_config
from obliviate.io import write_jsonl
from obliviate.pipeline import models_dir, stage_data, stage_models
from obliviate.requests import request_from_benchmark

# micro's 4 forget people are too few for the default AUC margin; 0.25 keeps the test meaningful and fast
FAST = ["--config", "micro", "--set", "verdict.auc_margin=0.25", "--set", "verdict.bootstrap=300",
        "--set", "attacks.names=[relearning,paraphrase,quantization_4bit]",
        "--set", "method_args.gradient_difference={lr: 0.002, steps: 150, retain_weight: 3}"]


@pytest.fixture(scope="module")
def micro_target(tmp_path_factory):
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    cfg = load_config("micro", [f"output_dir={tmp_path_factory.getbasetemp() / 'micro-full'}"])
    bench = stage_data(cfg)
    stage_models(cfg, bench)
    request = request_from_benchmark(bench, tmp_path_factory.mktemp("request"))
    yield models_dir(cfg) / "target", request, bench
    torch.set_num_threads(threads)


def invoke(*args):
    return CliRunner().invoke(app, [str(a) for a in args])


def test_forget_then_verify_moves_the_verdict_and_writes_a_whole_directory(micro_target, tmp_path):
    target, request, bench = micro_target
    out = tmp_path / "forgotten"
    result = invoke("forget", "--model", target, "--request", request, "--method", "gradient_difference", "--out", out, *FAST)
    assert result.exit_code == 0, result.output
    evidence = json.loads((out / "evidence.json").read_text())
    assert evidence["before"]["verdict"] == "not forgotten"  # the target still says its forget people's facts
    before, after = evidence["before"]["evidence"]["plain"], evidence["after"]["evidence"]["plain"]
    assert before["candidate"] >= 0.8 and before["above"]
    assert after["candidate"] <= 0.25 and not after["above"]
    assert evidence["after"]["reference"] == "reference subjects"
    assert {"mia_loss", "mia_zlib", "relearning", "paraphrase"} <= set(evidence["after"]["evidence"])
    assert evidence["sizes"] == {"forget": len(bench.forget), "reference": len(bench.holdout),
                                 "retain": len(bench.retain) + len(bench.bios_of("retain")), "replay": 0, "probes": 0}
    page = (out / "evidence.html").read_text()
    assert (out / "config.json").is_file() and "<h2>before: " in page and f">{evidence['verdict']}</span>" in page
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary directory left behind
    # verify on its own reproduces the after-verdict from the saved directory
    again = invoke("verify", "--model", out, "--request", request, *FAST)
    assert again.exit_code == 0, again.output
    assert f"verdict: {evidence['after']['verdict']}" in again.output


def test_a_guard_writes_a_guarded_directory_judged_suppressed_or_worse(micro_target, tmp_path):
    target, request, _ = micro_target
    out = tmp_path / "guarded"
    result = invoke("forget", "--model", target, "--request", request, "--method", "guard", "--out", out, *FAST)
    assert result.exit_code == 0, result.output
    after = json.loads((out / "evidence.json").read_text())["after"]
    assert after["verdict"] == "suppressed" and after["deciding"].startswith("weights unchanged")
    assert "relearning" in after["skipped"]  # a wrapper has no weights of its own to attack


def _request(tmp_path, forget_rows, reference_rows, **extra):
    write_jsonl(tmp_path / "forget.jsonl", forget_rows)
    write_jsonl(tmp_path / "reference.jsonl", reference_rows)
    lines = ["kind: data", "forget: forget.jsonl", "reference: reference.jsonl", *(f"{k}: {v}" for k, v in extra.items())]
    (tmp_path / "request.yaml").write_text("\n".join(lines) + "\n")
    return tmp_path / "request.yaml"


def qa(subject, i):
    return {"subject": subject, "question": f"What is fact {i} of {subject}?", "answer": f"v{i}"}


@pytest.mark.parametrize("case, message", [
    ("empty", "holds no records"),
    ("missing", "line 2"),
    ("overlap", "Ada Vell"),
    ("small", "at least 72 are needed"),
    ("model", "not found"),
])
def test_bad_input_is_one_line_exit_2_and_nothing_written(micro_target, tmp_path, case, message):
    target, _, _ = micro_target
    forget = [qa("Ada Vell", i) for i in range(10)]
    reference = [qa(f"Ref {j}", i) for j in range(10) for i in range(10)]
    if case == "empty":
        request = _request(tmp_path, forget, reference)
        (tmp_path / "forget.jsonl").write_text("")
    elif case == "missing":
        request = _request(tmp_path, [forget[0], {"subject": "Ada Vell", "question": "Where?"}], reference)
    elif case == "overlap":
        request = _request(tmp_path, forget, reference + [qa("Ada Vell", 3)])
    elif case == "small":
        request = _request(tmp_path, forget, reference[:30])
    else:
        request = _request(tmp_path, forget, reference)
        target = tmp_path / "no-such-model"
    out = tmp_path / "out"
    result = invoke("forget", "--model", target, "--request", request, "--out", out, "--config", "micro")
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], lines
    assert "Traceback" not in result.output and not out.exists()


def test_plain_prompt_format_trains_without_the_chat_template_and_keeps_it(micro_target):
    from obliviate.models.hf import HFLanguageModel, encode_rows
    from obliviate.requests.forget import unlearn

    target, _, bench = micro_target
    lm = HFLanguageModel.load(target, name="before")
    template = "{% for m in messages %}[user]{{ m['content'] }}{% endfor %}{% if add_generation_prompt %}[bot]{% endif %}"
    lm.tokenizer.chat_template = template  # an instruct model: QA trains through its template by default
    seen = []
    encode = encode_rows

    def spy(tok, prompts, answers):  # records what the method encodes; encodes it for real
        seen.append(bool(tok.chat_template))
        return encode(tok, prompts, answers)

    import obliviate.methods.base as base

    cfg = load_config("micro", ["method_args.gradient_difference={lr: 0.002, steps: 2, eval_every: 0}"])
    models = {}
    base.encode_rows, original = spy, base.encode_rows
    try:
        for fmt in ("chat", "plain"):
            seen.clear()
            models[fmt], _ = unlearn(lm, bench, "gradient_difference", cfg, fmt)
            assert seen and set(seen) == {fmt == "chat"}  # every pool encoded with / without the template
    finally:
        base.encode_rows = original
    assert lm.tokenizer.chat_template == template and models["plain"].tokenizer.chat_template == template
    chat, plain = (dict(m.model.named_parameters()) for m in (models["chat"], models["plain"]))
    assert any(not torch.equal(chat[k], plain[k]) for k in chat)  # a different encoding trained different weights
