"""`obliviate` command line: thin typed commands over the library (each is also a Python call).

    obliviate run                                   # tiny preset: data, target + gold, methods, eval
    obliviate run --config micro --set train.epochs=20 --set methods=[gradient_ascent]
"""

from __future__ import annotations

import functools
import logging
import json
import sys
import threading
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console

from obliviate.errors import ObliviateError

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="Make a language model forget, measure how well it forgot, keep a record.")
# Piped output (logs, CI) gets a fixed width so the table never wraps; a terminal keeps its own.
console = Console() if sys.stdout.isatty() else Console(width=160)

ConfigOpt = typer.Option("tiny", "--config", "-c", help="preset name (tiny, micro; regression, digits for "
                         "`run`) or path to a YAML file")
SetOpt = typer.Option(None, "--set", "-s", help="override a config key, e.g. --set train.lr=1e-3 (repeatable)")


def _load(config: str, overrides: Optional[list[str]]):
    from obliviate.config import load_config
    from obliviate.supervised.config import supervised_raw

    raw = supervised_raw(config, overrides or [])
    if raw is not None:
        raise ObliviateError(f"config '{config}' is a supervised task (task: {raw['task']}); "
                             "only `obliviate run` runs it, e.g. obliviate run --config regression")
    return load_config(config, overrides or [])


def command(*args, group: typer.Typer | None = None, **kwargs):
    """`app.command` (or `group.command`) whose user errors print `error: <message>` on one line and
    exit 2, no traceback."""
    def wrap(fn):
        @functools.wraps(fn)
        def guarded(*a, **kw):
            try:
                return fn(*a, **kw)
            except ObliviateError as err:
                typer.echo(f"error: {err}", err=True)
                raise typer.Exit(2) from None
        return (group or app).command(*args, **kwargs)(guarded)
    return wrap


def main() -> None:
    app()


@command()
def run(config: str = ConfigOpt, set_: Optional[list[str]] = SetOpt,
        quick: bool = typer.Option(False, "--quick", help="skip the scalability and sustainability curves"),
        verdict: bool = typer.Option(False, "--verdict", help="attack every model and judge it removed / suppressed "
                                     "/ not forgotten against gold, with calibration controls")) -> None:
    """Run the whole job and print the method table; writes runs/<name>/report.json and report.html.

    Example: obliviate run --set data.forget_fraction=0.05 --set methods=[gradient_difference]
    Supervised (regression / classification) presets: obliviate run --config regression (or digits)
    """
    from obliviate.pipeline import run as run_pipeline, run_dir
    from obliviate.supervised.config import build_supervised_config, supervised_raw
    from obliviate.table import print_table

    raw = supervised_raw(config, set_ or [])
    if raw is not None:  # a `task:` key: a supervised (regression / classification) run, see --config regression
        from obliviate.supervised.pipeline import run_supervised
        from obliviate.supervised.report import print_supervised_table

        cfg = build_supervised_config(raw)
        report = run_supervised(cfg)
        print_supervised_table(report, console)
        console.print(f"report: {Path(cfg.output_dir) / cfg.name / 'report.json'}  ({report['timings_s']['total']:.0f} s)")
        return
    cfg = _load(config, [*(set_ or []), *(["eval.curves=false"] if quick else []),
                         *(["verdict.enabled=true"] if verdict else [])])
    report = run_pipeline(cfg)
    print_table(report, console)
    if "verdict" in report:
        from obliviate.table import print_verdicts

        print_verdicts(report["verdict"], console)
    console.print(f"report: {run_dir(cfg) / 'report.json'}  ({report['timings_s']['total']:.0f} s)")


@command()
def data(config: str = ConfigOpt, set_: Optional[list[str]] = SetOpt) -> None:
    """Generate the benchmark (JSONL per split) into the run's cache and print split sizes.

    Example: obliviate data --set data.people=200
    """
    from obliviate.pipeline import data_dir, stage_data

    cfg = _load(config, set_)
    bench = stage_data(cfg)
    sizes = {s: len(bench.split(s)) for s in ("forget", "retain", "holdout", "world", "neighbours")}
    console.print(f"{data_dir(cfg)}: " + ", ".join(f"{k} {v}" for k, v in sizes.items()))


@command()
def train(config: str = ConfigOpt, set_: Optional[list[str]] = SetOpt) -> None:
    """Train (or reuse) the target and gold models of a run.

    Example: obliviate train --config micro
    """
    from obliviate.pipeline import models_dir, stage_data, stage_models

    cfg = _load(config, set_)
    stage_models(cfg, stage_data(cfg))
    console.print(f"target and gold: {models_dir(cfg)}")


@command()
def unlearn(method: str = typer.Option(..., "--method", "-m", help="registered method name"),
            config: str = ConfigOpt, set_: Optional[list[str]] = SetOpt) -> None:
    """Run one unlearning method on the run's target; saves a Hugging Face model directory.

    Example: obliviate unlearn --method gradient_difference --set method_args.gradient_difference.steps=60
    """
    from obliviate.pipeline import method_dir, stage_data, stage_models, stage_unlearn

    cfg = _load(config, [*(set_ or []), f"methods=[{method}]"])
    bench = stage_data(cfg)
    _, facts = stage_unlearn(cfg, method, stage_models(cfg, bench, ("target",))["target"], bench)
    console.print(f"{method}: {method_dir(cfg, method)}  ({facts['seconds']} s)")


@command()
def sweep(method: str = typer.Option(..., "--method", "-m", help="registered method name"),
          grid: Optional[list[str]] = typer.Option(None, "--grid", "-g",
                                                   help="key=v1,v2 of the method's settings (repeatable)"),
          search: str = typer.Option("grid", help="grid (every combination) or optuna (multi-objective search)"),
          trials: int = typer.Option(8, min=1, help="points of an optuna search"),
          config: str = ConfigOpt, set_: Optional[list[str]] = SetOpt) -> None:
    """Vary a method's strength; print forget quality vs model utility with the Pareto front.

    Example: obliviate sweep --method gradient_difference --grid steps=20,40,80 --grid lr=1e-3,2e-3
    """
    from rich.table import Table

    from obliviate.pipeline import run_dir
    from obliviate.sweep import attach_to_report, parse_grid, run_sweep

    cfg = _load(config, [*(set_ or []), f"methods=[{method}]"])
    result = run_sweep(cfg, method, parse_grid(grid or [], cfg, method) or None, search, trials)
    table = Table(title=f"sweep: {method} (* = Pareto front)")
    for header in ("settings", "forget quality ↑", "model utility ↑", ""):
        table.add_column(header, justify="right" if header.startswith(("forget", "model")) else "left")
    for p in result["points"]:
        table.add_row(", ".join(f"{k}={v:g}" for k, v in p["params"].items()), f"{p['forget_quality']:.2g}",
                      f"{p['model_utility']:.3f}", "*" if p["pareto"] else "")
    console.print(table)
    report = attach_to_report(run_dir(cfg), result)
    if report is not None:
        from obliviate.evals.report import write_html

        write_html(report, run_dir(cfg) / "report.html")
    console.print(f"sweep: {run_dir(cfg) / f'sweep-{method}.json'}")


@command("eval")
def eval_(model: Path = typer.Option(..., "--model", help="a saved Hugging Face model directory"),
          config: str = ConfigOpt, set_: Optional[list[str]] = SetOpt) -> None:
    """Evaluate a saved model against the run's target and gold; prints the table.

    Example: obliviate eval --model runs/tiny/cache/method-gradient_difference-<hash>
    """
    from obliviate.models.hf import HFLanguageModel
    from obliviate.pipeline import evaluate_all, stage_data, stage_models
    from obliviate.table import print_table

    cfg = _load(config, set_)
    if not (model / "config.json").is_file():
        raise ObliviateError(f"--model {model}: not a Hugging Face model directory (no config.json)")
    bench = stage_data(cfg)
    facts = model / "unlearning.json"  # written by `obliviate unlearn`: name the row after the method
    name = json.loads(facts.read_text())["method"] if facts.is_file() else model.name
    models = stage_models(cfg, bench) | {name: HFLanguageModel.load(model, name=name)}
    results = evaluate_all(models, bench)
    print_table({"models": {n: {k: m.value for k, m in r.items()} for n, r in results.items()}}, console)


@command()
def report(run_dir: Path = typer.Argument(..., metavar="RUN_DIR",
                                          help="a run directory holding report.json, e.g. runs/tiny")) -> None:
    """(Re)write RUN_DIR/report.html from RUN_DIR/report.json: tables, plots, glossary, in one offline file.

    Example: obliviate report runs/tiny
    """
    from obliviate.evals.report import write_run_html

    console.print(f"report: {write_run_html(run_dir)}")


RequestOpt = typer.Option(..., "--request", "-r", help="forget request: a YAML or JSON file (kind, forget, reference, ...)")


@command()
def forget(model: str = typer.Option(..., "--model", help="packaged name, Hugging Face directory or .gguf file"),
           request: Path = RequestOpt,
           method: str = typer.Option("npo_kl", "--method", "-m", help="registered weight-space method, or "
                                      "guard|eco|alu for a guarded model directory"),
           out: Optional[Path] = typer.Option(None, "--out", "-o", help="new directory for the model and the "
                                              "evidence (default forgotten/<request name>)"),
           config: str = typer.Option("tiny", "--config", "-c", help="preset or YAML whose method_args, lora, "
                                      "attacks and verdict apply"),
           set_: Optional[list[str]] = SetOpt) -> None:
    """Unlearn a forget request from a model; write the model, evidence.json and evidence.html, print the verdict.

    Example: obliviate forget --model smollm2-135m-instruct --request request.yaml --method npo_kl --out forgotten/
    """
    from obliviate.requests.forget import forget as run_forget

    cfg = _load(config, set_)
    evidence = run_forget(model, request, method, out, cfg)
    _print_evidence(evidence)


@command()
def verify(model: str = typer.Option(..., "--model", help="model to verify: HF directory, .gguf, packaged name, "
                                     "or a directory written by `obliviate forget`"),
           request: Path = RequestOpt,
           out: Optional[Path] = typer.Option(None, "--out", "-o", help="directory for evidence.json / .html"),
           config: str = ConfigOpt, set_: Optional[list[str]] = SetOpt) -> None:
    """Verify a model against a forget request without a retrained model; print the verdict and every test.

    Example: obliviate verify --model forgotten/ --request request.yaml
    """
    from obliviate.requests.forget import verify_saved

    _print_evidence(verify_saved(model, request, _load(config, set_), out))


def _print_evidence(evidence: dict) -> None:
    from rich.table import Table

    from obliviate.table import deciding_text

    for stage in ("before", "after"):
        v = evidence.get(stage)
        if v is None:
            continue
        table = Table(title=f"{stage}: {v['verdict']} — {deciding_text(v)}", title_justify="left")
        for col in ("test", "model", "reference", "difference", "bounds", "margin", "state"):
            table.add_column(col, justify="left" if col in ("test", "state") else "right")
        for name, e in v["evidence"].items():
            state = "above" if e["above"] else "within margin" if e["equivalent"] else "undecided"
            table.add_row(name, f"{e['candidate']:.3f}", f"{e['reference']:.3f}", f"{e['difference']:+.3f}",
                          f"[{e['lower']:+.3f}, {e['upper']:+.3f}]", f"{e['margin']:.2f}", state)
        console.print(table)
    where = evidence.get("out")
    console.print(f"verdict: {evidence['verdict']}" + (f"  evidence: {where}" if where else ""))


# --- the forget-request ledger (docs/ledger.md): thin commands over obliviate.ledger --------------

request_app = typer.Typer(no_args_is_help=True, help="Forget requests in the ledger: submit, list, show, cancel.")
ledger_app = typer.Typer(no_args_is_help=True, help="The ledger's hash-chained audit trail.")
models_app = typer.Typer(no_args_is_help=True, help="Model versions recorded in the ledger.")
app.add_typer(request_app, name="request")
app.add_typer(ledger_app, name="ledger")
app.add_typer(models_app, name="models")
DbOpt = typer.Option(None, "--db", help="ledger database: a SQLite path, sqlite:///path or "
                     "postgresql+psycopg://user@host/dbname (default $OBLIVIATE_DB, else ./obliviate-ledger.db)")
JsonOpt = typer.Option(False, "--json", help="print JSON instead of a table")


def _actor() -> str:
    import getpass

    try:
        return f"cli:{getpass.getuser()}"
    except Exception:  # noqa: BLE001 - no user name in this environment
        return "cli"


def _print_json(value) -> None:
    typer.echo(json.dumps(value, indent=2, ensure_ascii=False))


@command("submit", group=request_app)
def request_submit(file: Path = typer.Argument(..., metavar="FILE", help="forget request: a YAML or JSON file"),
                   db: Optional[str] = DbOpt,
                   idempotency_key: Optional[str] = typer.Option(None, "--idempotency-key",
                                                                 help="submitting again with this key returns the "
                                                                 "existing request"),
                   requester: Optional[str] = typer.Option(None, help="who asked (default: the file's requester)"),
                   legal_basis: Optional[str] = typer.Option(None, help="e.g. 'GDPR Art. 17' (default: the file's)"),
                   due_by: Optional[str] = typer.Option(None, help="deadline: 2026-06-30, 2026-06-30T17:00 or a "
                                                        "span such as 30d"),
                   keep_filter: Optional[bool] = typer.Option(None, "--keep-filter/--drop-filter",
                                                              help="keep the content filter after removal "
                                                              "(default: knowledge keeps it, data drops it)"),
                   hold: bool = typer.Option(False, "--hold", help="record it as received for review; do not "
                                             "suppress or queue it yet"),
                   json_: bool = JsonOpt) -> None:
    """Record a forget request, suppress it at once (the guard protects its facts) and queue it for the worker.

    Example: obliviate request submit request.yaml --idempotency-key TICKET-17 --legal-basis "GDPR Art. 17"
    """
    from obliviate.ledger import open_ledger
    from obliviate.ledger.models import utcnow
    from obliviate.ledger.store import parse_due, prepare, submit
    from obliviate.ledger.views import summary

    prepared = prepare(file)  # every bad input fails here, before the database is touched
    parse_due(due_by, utcnow())
    with open_ledger(db) as ledger:
        with ledger.begin() as session:
            sub = submit(session, prepared, actor=_actor(), requester=requester, legal_basis=legal_basis,
                         due_by=due_by, idempotency_key=idempotency_key, keep_filter_after_removal=keep_filter,
                         hold=hold)
            out = summary(sub.request) | {"created": sub.created}
    if json_:
        _print_json(out)
    elif sub.created:
        console.print(f"request {out['id']}: {out['status']}  ({ledger.url})")
    else:
        console.print(f"request {out['id']} already submitted with idempotency key {idempotency_key!r}: "
                      f"{out['status']}, nothing written")


@command("list", group=request_app)
def request_list(status: Optional[str] = typer.Option(None, "--status", help="only requests in this status"),
                 db: Optional[str] = DbOpt, json_: bool = JsonOpt) -> None:
    """List the ledger's requests, oldest first.

    Example: obliviate request list --status suppressed_only
    """
    from rich.table import Table

    from obliviate.ledger import open_ledger
    from obliviate.ledger.lifecycle import status_of
    from obliviate.ledger.views import list_requests, summary

    if status is not None:
        status_of(status)  # an unknown status fails before the database is touched
    with open_ledger(db, create=False) as ledger, ledger.begin() as session:
        rows = [summary(r) for r in list_requests(session, status)]
    if json_:
        _print_json(rows)
        return
    table = Table(title=f"requests in {ledger.url}" + (f" ({status})" if status else ""), title_justify="left")
    for col in ("id", "status", "kind", "subject", "ref", "received", "due", "attempts", "payload"):
        table.add_column(col, justify="right" if col in ("id", "attempts") else "left")
    for r in rows:
        table.add_row(str(r["id"]), r["status"], r["kind"], r["subject"] or "", r["external_ref"] or "",
                      r["received_at"], r["due_by"] or "", f"{r['attempts']}/{r['max_attempts']}", r["payload"])
    console.print(table)


@command("show", group=request_app)
def request_show(request_id: str = typer.Argument(..., metavar="ID"), db: Optional[str] = DbOpt,
                 json_: bool = JsonOpt) -> None:
    """Show one request: its fields, what the ledger still holds of it, and its audit events (never its records).

    Example: obliviate request show 3 --json
    """
    from rich.table import Table

    from obliviate.ledger import open_ledger
    from obliviate.ledger.views import show

    with open_ledger(db, create=False) as ledger, ledger.begin() as session:
        out = show(session, request_id)
    if json_:
        _print_json(out)
        return
    for key in ("id", "status", "kind", "subject", "external_ref", "requester", "legal_basis", "received_at",
                "due_by", "attempts", "keep_filter_after_removal", "model_version_id", "last_error", "payload"):
        if out[key] is not None:
            console.print(f"{key}: {out[key]}")
    console.print("counts: " + ", ".join(f"{k} {v}" for k, v in out["counts"].items() if v))
    table = Table(title="events", title_justify="left")
    for col in ("id", "at", "actor", "type", "details"):
        table.add_column(col)
    for e in out["events"]:
        table.add_row(str(e["id"]), e["at"], e["actor"], e["type"], json.dumps(e["details"], ensure_ascii=False))
    console.print(table)


@command("cancel", group=request_app)
def request_cancel(request_id: str = typer.Argument(..., metavar="ID"), db: Optional[str] = DbOpt,
                   reason: Optional[str] = typer.Option(None, help="why, for the audit trail")) -> None:
    """Cancel a request that has not been removed (not while a job runs); its payload is purged.

    Example: obliviate request cancel 3 --reason "withdrawn by the requester"
    """
    from obliviate.ledger import open_ledger
    from obliviate.ledger.store import cancel

    with open_ledger(db, create=False) as ledger, ledger.begin() as session:
        row = cancel(session, request_id, actor=_actor(), reason=reason)
    console.print(f"request {row.id}: {row.status}")


@command("verify", group=ledger_app)
def ledger_verify(db: Optional[str] = DbOpt) -> None:
    """Recompute the audit hash chain; name the first broken event and exit 1 if it does not hold.

    Example: obliviate ledger verify --db postgresql+psycopg://ops@db/ledger
    """
    from obliviate.ledger import open_ledger, verify_chain

    with open_ledger(db, create=False) as ledger, ledger.begin() as session:
        ok, _, message = verify_chain(session)
    if not ok:
        typer.echo(f"broken: {message}  ({ledger.url})", err=True)
        raise typer.Exit(1)
    console.print(f"ok: {message}  ({ledger.url})", soft_wrap=True)


@command("list", group=models_app)
def models_list(db: Optional[str] = DbOpt, json_: bool = JsonOpt) -> None:
    """List the model versions in the ledger, oldest first; the newest is the current one.

    Example: obliviate models list --json
    """
    from rich.table import Table

    from obliviate.ledger import current_model_version, list_model_versions, open_ledger
    from obliviate.ledger.versions import version_dict

    with open_ledger(db, create=False) as ledger, ledger.begin() as session:
        current = current_model_version(session)
        rows = [version_dict(v, current.id if current else None) for v in list_model_versions(session)]
    if json_:
        _print_json(rows)
        return
    table = Table(title=f"model versions in {ledger.url}", title_justify="left")
    for col in ("id", "parent", "created", "sha256", "requests", "path", "evidence", ""):
        table.add_column(col)
    for v in rows:
        table.add_row(str(v["id"]), str(v["parent_id"] or ""), v["created_at"], v["weights_sha256"][:12],
                      ", ".join(map(str, v["request_ids"])), v["path"], v["evidence_path"] or "",
                      "current" if v["current"] else "")
    console.print(table)


@command("add", group=models_app)
def models_add(path: str = typer.Argument(..., metavar="PATH", help="Hugging Face model directory, .gguf file, "
                                          "SISA / S3T store directory, or a packaged name (smollm2-135m-instruct)"),
               db: Optional[str] = DbOpt, json_: bool = JsonOpt) -> None:
    """Register a base model version (checksummed); the worker unlearns from the newest version.

    Example: obliviate models add runs/tiny/cache/models-<hash>/target --db ledger.db
    """
    from obliviate.ledger import open_ledger, register_model_version
    from obliviate.ledger.exact import is_exact_store
    from obliviate.ledger.versions import directory_sha256, resolve_model_path, version_dict

    resolved = resolve_model_path(path)
    if resolved.is_file() and resolved.suffix.lower() != ".gguf":
        raise ObliviateError(f"{path} is a file but not a .gguf; give a GGUF file or a model directory")
    if resolved.is_dir() and not (is_exact_store(resolved) or (resolved / "config.json").is_file()):
        raise ObliviateError(f"{path} is neither a Hugging Face model directory (no config.json) nor a SISA / S3T "
                             "store (no lineage.json and base/); give the directory `obliviate unlearn` or "
                             "`save_pretrained` wrote")
    if is_exact_store(resolved):
        fmt = json.loads((resolved / "lineage.json").read_text()).get("kind", "exact")
    else:
        fmt = "gguf" if resolved.is_file() else "hf"
    stored = str(resolved.absolute()) if Path(path).expanduser().exists() else path  # a packaged name stays a name
    sha = directory_sha256(resolved)
    with open_ledger(db) as ledger, ledger.begin() as session:
        version = register_model_version(session, path=stored, weights_sha256=sha, actor=_actor(), parent_id=None,
                                         details={"base": True, "format": fmt})
        out = version_dict(version, version.id)
    if json_:
        _print_json(out)
    else:
        console.print(f"model version {out['id']}: {stored} ({fmt}, sha256 {sha[:12]}…)  ({ledger.url})")


@command()
def worker(once: bool = typer.Option(False, "--once", help="process what is queued now, then exit"),
           batch_window: str = typer.Option("60s", "--batch-window", help="wait until the oldest queued request "
                                            "is this old, so requests arriving close together share one job"),
           db: Optional[str] = DbOpt,
           method: str = typer.Option("npo_kl", "--method", "-m", help="weight-space method for HF / GGUF "
                                      "models (SISA / S3T stores delete through their lineage)"),
           config: str = ConfigOpt, set_: Optional[list[str]] = SetOpt,
           versions_dir: Path = typer.Option(Path("obliviate-versions"), "--versions-dir",
                                             help="where new model versions are written (v<id>/)"),
           max_attempts: Optional[int] = typer.Option(None, "--max-attempts", min=1, help="retry a failing "
                                                      "request up to N attempts (default: its own, 3)"),
           batch_size: int = typer.Option(10, "--batch-size", min=1, help="most requests in one job"),
           lease: str = typer.Option("10m", "--lease", help="reclaim a claim not renewed for this long "
                                     "(a worker on another host that went silent)"),
           launch: Optional[str] = typer.Option(None, "--launch", help="run each job under this launcher, for a "
                                                "model larger than one device, e.g. 'accelerate launch "
                                                "--config_file configs/accelerate/ddp.yaml --num_processes 8'"),
           retrain: bool = typer.Option(True, "--retrain/--no-retrain", help="retrain S3T blocks deactivated by "
                                        "deletions when idle"),
           worker_id: Optional[str] = typer.Option(None, "--worker-id", help="name in claims and events "
                                                   "(default host:pid:start)"),
           poll: float = typer.Option(1.0, "--poll", min=0.01, help="seconds between looks at the queue"),
           json_: bool = JsonOpt) -> None:
    """Claim queued forget requests in batches, unlearn them from the current model version, record the outcome.

    SIGTERM or Ctrl-C stops it after the running job (a second one aborts; the batch is reclaimed later).
    Example: obliviate worker --db ledger.db --config micro --method npo_kl --batch-window 60s
    """
    import signal

    from obliviate.ledger import open_ledger
    from obliviate.ledger.worker import parse_duration, run_worker

    window, lease_s = parse_duration(batch_window), parse_duration(lease, "--lease")
    cfg = _load(config, set_)
    stop, progress = threading.Event(), Console(stderr=True, highlight=False)

    def on_signal(signum, frame):
        if stop.is_set():
            raise KeyboardInterrupt(f"signal {signum}")
        stop.set()
        typer.echo("stopping after the running job (signal again to abort it)", err=True)

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        with open_ledger(db, create=False) as ledger:
            summary = run_worker(ledger, once=once, batch_window_s=window, method=method, cfg=cfg,
                                 versions_dir=versions_dir, worker_id=worker_id, batch_size=batch_size,
                                 max_attempts=max_attempts, lease_s=lease_s, poll_s=poll, launch=launch,
                                 retrain=retrain, stop=stop, log=lambda line: progress.print(line, soft_wrap=True))
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    if json_:
        _print_json(summary)
    else:
        console.print(f"worker {summary['worker_id']}: {summary['jobs']} jobs; removed {len(summary['removed'])}, "
                      f"suppressed_only {len(summary['suppressed_only'])}, failed {len(summary['failed'])}, "
                      f"reclaimed {len(summary['reclaimed'])}; versions {summary['versions'] or '-'}")


@command()
def serve(model: Optional[str] = typer.Option(None, "--model", help="local mode: packaged name, Hugging Face "
                                              "directory or .gguf (the ledger's current model version wins)"),
          upstream: Optional[str] = typer.Option(None, "--upstream", help="upstream mode: base URL of an "
                                                 "OpenAI-compatible server, e.g. http://127.0.0.1:8001/v1"),
          db: Optional[str] = DbOpt,
          host: str = typer.Option("127.0.0.1", "--host"), port: int = typer.Option(8000, "--port", min=0),
          guard: str = typer.Option("guard", "--guard", help="how flagged prompts are answered in local mode: "
                                    "guard, eco or alu"),
          protect: bool = typer.Option(True, "--protect/--no-protect", help="--no-protect turns the classifier and "
                                       "the output audit off (a baseline for benchmarks, never for users)"),
          guard_option: Optional[list[str]] = typer.Option(None, "--guard-option", help="KEY=VALUE of the guard's "
                                                           "config, e.g. semantic_candidates=0 (repeatable)"),
          audit: bool = typer.Option(True, "--audit/--no-audit", help="--no-audit leaves the guard alone, "
                                     "without the output audit (to measure what the audit adds)"),
          admin_token_file: Optional[Path] = typer.Option(None, "--admin-token-file", help="file holding the "
                                                          "admin API's bearer token (else $OBLIVIATE_ADMIN_TOKEN)"),
          model_name: Optional[str] = typer.Option(None, "--model-name", help="the id clients send as model "
                                                   "(default: the model folder's name)"),
          max_batch: int = typer.Option(32, "--max-batch", min=1, help="most concurrent requests in one batch"),
          threads: Optional[int] = typer.Option(None, "--threads", min=1, help="torch threads")) -> None:
    """Serve a model through the OpenAI API, keeping the ledger's forget requests out of every answer.

    Example: obliviate serve --model runs/tiny/models/.../target --db ledger.db --port 8000
    """
    import os

    import uvicorn

    from obliviate.serve.app import JsonFormatter, Settings, create_app

    if upstream is None and model is None and db is None and not os.environ.get("OBLIVIATE_DB"):
        raise ObliviateError("nothing to serve: pass --model SPEC (local mode) or --upstream URL (upstream mode)")
    if guard not in ("guard", "eco", "alu"):
        raise ObliviateError(f"unknown --guard {guard!r}; choose guard, eco or alu")
    token = os.environ.get("OBLIVIATE_ADMIN_TOKEN")
    if admin_token_file is not None:
        try:
            token = admin_token_file.read_text().strip()
        except OSError as err:
            raise ObliviateError(f"cannot read --admin-token-file {admin_token_file}: {err.strerror}") from None
    if threads:
        import torch

        torch.set_num_threads(threads)
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter())
    served = logging.getLogger("obliviate.serve")
    served.handlers[:] = [handler]
    served.setLevel(logging.INFO)
    served.propagate = False
    import yaml

    options = {}
    for item in guard_option or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ObliviateError(f"--guard-option {item!r} is not KEY=VALUE; e.g. --guard-option penalty=30")
        options[key.strip()] = yaml.safe_load(value)
    from obliviate.guards.base import GUARDED_KINDS
    from pydantic import ValidationError

    try:
        GUARDED_KINDS[guard].config_class(**options)
    except ValidationError as err:
        raise ObliviateError(f"--guard-option for {guard}: {err.errors()[0]['loc'][0]}: {err.errors()[0]['msg']}") \
            from None
    settings = Settings(model=model, upstream=upstream, db=db, guard=guard, protect=protect, audit=audit,
                        guard_config=options, admin_token=token, model_name=model_name, max_batch=max_batch)
    app = create_app(settings)
    # access_log off: the app logs every request itself, as JSON, with its request id
    uvicorn.run(app, host=host, port=port, access_log=False, log_level="warning", timeout_graceful_shutdown=30)


if __name__ == "__main__":
    main()
