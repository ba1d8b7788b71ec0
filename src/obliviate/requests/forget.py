"""Honour a forget request on the user's own model: unlearn, save, verify before and after, write the evidence.

    from obliviate.requests.forget import forget
    evidence = forget("smollm2-135m-instruct", "request.yaml", method="npo_kl", out="forgotten/")
    # forgotten/: a Hugging Face model directory (or a guarded one for guard|eco|alu),
    #             evidence.json and evidence.html

The method comes from the registry with its settings from a run config (`--config`, `--set
method_args.npo_kl.lr=5e-4`). Without retain records the retain data is the model's own greedy
answers to general questions (`data.general`), which KL-anchored methods hold in place. Every
weight-space method stops early once its forget recall on a validation slice falls to the
model's own recall on reference subjects (the gold-free stand-in for gold's level).
Nothing is written until every check has passed; the output directory appears whole or not at all.
"""

from __future__ import annotations

import contextlib
import inspect
import json
import time
from pathlib import Path

from obliviate.config import RunConfig
from obliviate.errors import ObliviateError
from obliviate.io import atomic_dir

GUARDS = ("guard", "eco", "alu")


def settings_of(cfg: RunConfig):
    from obliviate.requests.verify import VerifySettings

    return VerifySettings(attacks=cfg.attacks, verdict=cfg.verdict, mia_k=cfg.eval.mia_k,
                          prefix_words=cfg.eval.verbmem_prefix_words)


def prepare(request: str | Path, cfg: RunConfig):
    """The loaded request and its benchmark, power checked: every bad input raises before any model loads."""
    from obliviate.requests import load_request, load_request_data
    from obliviate.requests.verify import check_power

    data = load_request_data(load_request(request))
    bench = data.benchmark()
    if data.kind == "data":
        check_power(bench, cfg.verdict, f"request {request}")
    return data, bench


def replay_answers(lm, max_new_tokens: int = 24) -> list[dict]:
    """The model's own greedy answers to the general questions: the retain data when the request has none."""
    from obliviate.data import format_prompt
    from obliviate.data.general import GENERAL_QUESTIONS

    answers = lm.generate([format_prompt(q) for q in GENERAL_QUESTIONS], max_new_tokens)
    return [{"question": q, "answer": a} for q, a in zip(GENERAL_QUESTIONS, answers) if a]


def unlearn(lm, bench, method: str, cfg: RunConfig, prompt_format: str = "chat"):
    """The method's candidate model and its run facts; `prompt_format` "plain" trains an instruct
    model's QA without its chat template (`models.hf.plain_prompts`), as multiple choice scores it."""
    from obliviate.methods import METHODS
    from obliviate.methods.base import slice_accuracy, validation_slice
    from obliviate.models.hf import plain_prompts
    from obliviate.requests.verify import reference_view

    config = cfg.method_config(method)
    unlearner = METHODS.get(method)(config)
    extra = {}
    if (getattr(config, "eval_every", 0) and "stop_at" in inspect.signature(unlearner.unlearn).parameters
            and bench.holdout):
        extra["stop_at"] = slice_accuracy(lm, validation_slice(reference_view(bench), config.eval_size))
    start = time.perf_counter()
    with plain_prompts(lm) if prompt_format == "plain" else contextlib.nullcontext():
        candidate = unlearner.unlearn(lm, bench, seed=cfg.seed, **extra)
    tok = getattr(candidate, "tokenizer", None)
    if tok is not None and tok is not lm.tokenizer:  # a copy made inside the block keeps the template it saw
        tok.chat_template = lm.tokenizer.chat_template
    facts = {"method": method, "config": unlearner.config.model_dump(mode="json"),
             "seconds": round(time.perf_counter() - start, 2), "reference_slice_acc": extra.get("stop_at"),
             **unlearner.facts()}
    return candidate, facts


def forget(model: str | Path, request: str | Path, method: str = "npo_kl", out: str | Path | None = None,
           cfg: RunConfig | None = None) -> dict:
    """Unlearn `request` from `model` with `method`; write the model and the evidence to `out`."""
    from obliviate.methods import METHODS
    from obliviate.models.load import load_language_model
    from obliviate.requests.evidence import write_evidence
    from obliviate.requests.verify import verify
    from obliviate.runtime import environment

    cfg = cfg or RunConfig()
    if METHODS.get(method).__module__.startswith("obliviate.methods.exact."):  # unknown names fail in get()
        raise ObliviateError(f"--method {method} is an exact method: it trains its own sharded model from scratch "
                             "and cannot unlearn a given one; use a weight-space method (e.g. npo_kl, rmu) or "
                             "guard|eco|alu")
    out = Path(out) if out is not None else Path("forgotten") / Path(str(request)).stem
    if out.exists() and any(out.iterdir()):
        raise ObliviateError(f"--out {out} already exists and is not empty; choose a new directory")
    data, bench = prepare(request, cfg)
    lm = load_language_model(model, name="before")
    if not bench.retain and not bench.bios_of("retain"):  # retain passages count as retain data too
        bench.replay = replay_answers(lm)
    start = time.perf_counter()
    settings = settings_of(cfg)
    before = verify(lm, data, settings)
    candidate, facts = unlearn(lm, bench, method, cfg, data.prompt_format)
    candidate.name = "after"
    after = verify(candidate, data, settings)
    evidence = {"obliviate_evidence": 1, "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                "request": str(request), "kind": data.kind, "model": str(model), "method": method,
                "sizes": {"forget": len(bench.forget), "reference": len(bench.holdout),
                          "retain": len(bench.retain) + len(bench.bios_of("retain")),
                          "replay": len(bench.replay), "probes": len(data.probes)},
                "unlearning": facts, "before": before, "after": after, "verdict": after["verdict"],
                "settings": settings.model_dump(mode="json"), "seconds": round(time.perf_counter() - start, 1),
                "environment": environment(), "out": str(out)}
    with atomic_dir(out) as tmp:
        candidate.save(tmp)
        (tmp / "unlearning.json").write_text(json.dumps(facts, indent=2))
        write_evidence(evidence, tmp)
    return evidence


def verify_saved(model: str | Path, request: str | Path, cfg: RunConfig | None = None,
                 out: str | Path | None = None) -> dict:
    """`obliviate verify`: the verdict of a saved model (HF dir, GGUF, packaged name or guarded dir) on a request."""
    from obliviate.guards import is_guarded_dir, load_guarded
    from obliviate.models.load import load_language_model
    from obliviate.requests.evidence import write_evidence
    from obliviate.requests.verify import verify

    cfg = cfg or RunConfig()
    data, bench = prepare(request, cfg)
    path = Path(str(model))
    lm = load_guarded(path, name="model") if is_guarded_dir(path) else load_language_model(model, name="model")
    start = time.perf_counter()
    result = verify(lm, data, settings_of(cfg))
    evidence = {"obliviate_evidence": 1, "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "request": str(request),
                "kind": data.kind, "model": str(model), "after": result, "verdict": result["verdict"],
                "sizes": {"forget": len(bench.forget), "reference": len(bench.holdout), "probes": len(data.probes)},
                "seconds": round(time.perf_counter() - start, 1)}
    if out is not None:
        evidence["out"] = str(out)
        with atomic_dir(Path(out)) as tmp:
            write_evidence(evidence, tmp)
    return evidence
