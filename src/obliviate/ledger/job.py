"""One weight-space unlearning job: a batch of requests merged into one request file, then `forget`.

    from obliviate.ledger.job import write_batch_request, run_forget
    request_file = write_batch_request(batch, job_dir / "request")   # the batch's records, deduplicated
    evidence = run_forget("versions/v3", request_file, "npo_kl", job_dir / "model", cfg)

The merged request keeps each forget record once; reference and retain records that name a
subject (or ask a question) being forgotten by another request of the batch are dropped, since
they can be neither a non-member nor kept. The files are what `obliviate forget` reads, so a job is
exactly `obliviate forget --model <current version> --request <merged request>`.

For a model larger than one device, `launch` runs the job under `accelerate launch` with the
existing configs (configs/accelerate/*.yaml), as `obliviate.distributed_unlearn` does:

    obliviate worker --launch "accelerate launch --config_file configs/accelerate/ddp.yaml --num_processes 8"

runs `accelerate launch ... -m obliviate.ledger.job --model ... --request ... --out ...` in its own
process group (killed with the worker: SIGKILL on the worker's death, SIGTERM then SIGKILL on abort);
every process trains on its share of each batch and only the main one writes the model and evidence.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import signal
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

import yaml

from obliviate.errors import ObliviateError
from obliviate.io import write_jsonl
from obliviate.ledger.store import request_data

if TYPE_CHECKING:
    from obliviate.config import RunConfig
    from obliviate.ledger.models import Request
    from obliviate.requests import RequestData


def _subject(record: dict) -> str | None:
    """The record's named subject; None for a loader's stand-in ("record 3", or a knowledge question)."""
    person = record.get("person")
    if person in (None, "", record.get("question")) or str(person).startswith("record "):
        return None
    return person


def _qa_row(r: dict) -> dict:
    row = {"question": r["question"], "answer": r["answer"]}
    if _subject(r):
        row["subject"] = _subject(r)
    for key in ("attribute", "phrasings", "paraphrased_question", "paraphrased_answer", "perturbed_answers"):
        if r.get(key) not in (None, "", []):
            row[key] = r[key]
    return row


def _passage_row(p: dict) -> dict:
    return {"text": p["text"], **({"subject": _subject(p)} if _subject(p) else {})}


def _probe_row(p: dict) -> dict:
    return {"question": p["question"], "choices": p["choices"], "answer": p["answer"]}


def _unique(rows: list[dict], key) -> list[dict]:
    seen, out = set(), []
    for r in rows:
        k = key(r)
        if k not in seen:
            seen.add(k)
            out.append(r)
    return out


def merge(parts: list["RequestData"]) -> dict[str, list[dict]]:
    """The batch's records as request files' rows: forget, reference, retain, neighbours."""
    kind = {p.kind for p in parts}
    if len(kind) != 1:
        raise ObliviateError(f"a job merges requests of one kind, got {sorted(kind)}")
    qa = _unique([r for p in parts for r in p.forget], lambda r: (r["question"], r["answer"]))
    passages = _unique([r for p in parts for r in p.forget_passages], lambda r: r["text"])
    probes = _unique([r for p in parts for r in p.probes], lambda r: (r["question"], tuple(r["choices"])))
    subjects = {_subject(r) for r in qa + passages} - {None}
    questions = {r["question"] for r in qa} | {r["question"] for r in probes}
    pairs = {(r["question"], r["answer"]) for r in qa}

    def keeps(r: dict, by_question: bool) -> bool:
        return _subject(r) not in subjects and not (r.get("question") in questions if by_question
                                                    else (r.get("question"), r.get("answer")) in pairs)

    reference = _unique([r for p in parts for r in p.reference if keeps(r, False)],
                        lambda r: (r["question"], r["answer"]))
    ref_passages = _unique([r for p in parts for r in p.reference_passages if keeps(r, False)], lambda r: r["text"])
    ref_subjects = {_subject(r) for r in reference + ref_passages} - {None}
    retain = _unique([r for p in parts for r in p.retain if keeps(r, True) and _subject(r) not in ref_subjects],
                     lambda r: r["question"])
    ret_passages = _unique([r for p in parts for r in p.retain_passages if keeps(r, False)
                            and _subject(r) not in ref_subjects], lambda r: r["text"])
    neighbours = _unique([r for p in parts for r in p.neighbour_probes if r["question"] not in questions],
                         lambda r: (r["question"], tuple(r["choices"])))
    return {"forget": [_qa_row(r) for r in qa] + [_passage_row(r) for r in passages] + [_probe_row(r) for r in probes],
            "reference": [_qa_row(r) for r in reference] + [_passage_row(r) for r in ref_passages],
            "retain": [_qa_row(r) for r in retain] + [_passage_row(r) for r in ret_passages],
            "neighbours": [_probe_row(r) for r in neighbours], "kind": next(iter(kind))}


def write_batch_request(batch: list["Request"], folder: Path) -> Path:
    """The batch's records as one request (request.yaml + JSON-lines files) in `folder`."""
    merged = merge([request_data(r) for r in batch])
    folder.mkdir(parents=True, exist_ok=True)
    spec: dict = {"kind": merged["kind"], "id": "batch-" + "-".join(str(r.id) for r in batch)}
    for part in ("forget", "reference", "retain", "neighbours"):
        if merged[part]:
            write_jsonl(folder / f"{part}.jsonl", merged[part])
            spec[part] = f"{part}.jsonl"
    (folder / "request.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    return folder / "request.yaml"


def launch_command(launch: str | list[str], model: str, request: Path, method: str, out: Path,
                   config: Path) -> list[str]:
    """The `accelerate launch ... -m obliviate.ledger.job ...` command line (accelerate of this Python)."""
    prefix = shlex.split(launch) if isinstance(launch, str) else list(launch)
    if not prefix:
        raise ObliviateError("--launch is empty; give e.g. 'accelerate launch --config_file "
                             "configs/accelerate/ddp.yaml --num_processes 8'")
    if prefix[:2] == ["accelerate", "launch"]:
        prefix = [sys.executable, "-m", "accelerate.commands.launch", *prefix[2:]]
    return [*prefix, "-m", "obliviate.ledger.job", "--model", str(model), "--request", str(request),
            "--method", method, "--out", str(out), "--config", str(config)]


def _die_with_parent() -> None:  # runs in the child before exec: SIGKILL it when the worker dies (Linux)
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def run_launched(cmd: list[str], out: Path, log: Path) -> dict:
    """Run a launched job to its end and return the evidence it wrote; an interrupt ends its process group."""
    with open(log, "w") as sink:
        child = subprocess.Popen(cmd, stdout=sink, stderr=subprocess.STDOUT, start_new_session=True,
                                 preexec_fn=_die_with_parent if sys.platform.startswith("linux") else None)
        try:
            code = child.wait()
        except BaseException:  # the worker is aborting: take the job's processes down with it
            for sig, wait in ((signal.SIGTERM, 10), (signal.SIGKILL, 10)):
                try:
                    os.killpg(child.pid, sig)
                    child.wait(wait)
                    break
                except (ProcessLookupError, subprocess.TimeoutExpired):
                    continue
            raise
    if code != 0:
        tail = [line for line in log.read_text(errors="replace").splitlines() if line.strip()][-1:] or ["no output"]
        raise ObliviateError(f"launched job exited with status {code}: {tail[0][:300]}")
    return json.loads((out / "evidence.json").read_text())


def run_forget(model: str, request: Path, method: str, out: Path, cfg: "RunConfig",
               launch: str | list[str] | None = None) -> dict:
    """`forget(model, request, method, out, cfg)` in this process, or under `launch` (accelerate)."""
    if launch:
        from obliviate.config import config_to_dict

        config = out.parent / "config.yaml"
        config.write_text(yaml.safe_dump(config_to_dict(cfg), sort_keys=False))
        return run_launched(launch_command(launch, model, request, method, out, config), out,
                            out.parent / "launch.log")
    from obliviate.requests.forget import forget

    if cfg.threads:
        import torch

        torch.set_num_threads(cfg.threads)
    return forget(model, request, method, out, cfg)


def scrub_evidence(out: Path) -> None:
    """Drop the text `forget` puts in evidence.json (each test's example prompt names a forget subject):
    the version directory outlives the request's payload, so it keeps only the figures."""
    path = out / "evidence.json"
    if not path.is_file():
        return
    evidence = json.loads(path.read_text())
    for stage in ("before", "after"):
        for test in ((evidence.get(stage) or {}).get("evidence") or {}).values():
            if isinstance(test, dict) and isinstance(test.get("details"), dict):
                test["details"] = {k: v for k, v in test["details"].items() if not isinstance(v, str)}
    path.write_text(json.dumps(evidence, indent=1, default=float) + "\n")


def main(argv: list[str] | None = None) -> None:
    """Entry point under `accelerate launch`: every process unlearns, only the main one writes `--out`."""
    parser = argparse.ArgumentParser(prog="python -m obliviate.ledger.job")
    for flag in ("--model", "--request", "--method", "--out", "--config"):
        parser.add_argument(flag, required=True)
    args = parser.parse_args(argv)
    try:
        import torch
        from accelerate import PartialState

        from obliviate.config import load_config
        from obliviate.requests.forget import forget

        state = PartialState(cpu=not torch.cuda.is_available())
        cfg = load_config(args.config)
        out = Path(args.out)
        if not state.is_main_process:  # the same work, written where nobody reads it
            out = Path(tempfile.mkdtemp(prefix=f"obliviate-job-rank{state.process_index}-")) / "out"
        forget(args.model, args.request, args.method, out, cfg)
        state.wait_for_everyone()
        if not state.is_main_process:
            import shutil

            shutil.rmtree(out.parent, ignore_errors=True)
    except ObliviateError as err:
        print(f"error: {err}", file=sys.stderr)
        raise SystemExit(2) from None


if __name__ == "__main__":
    main()
