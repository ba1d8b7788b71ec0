"""The ledger's worker (issue 18, part 2): claiming, batching, forget + verdict, model versions, exact
deletion through an S3T store, crash safety under kill -9, and the CLI's bad input; on SQLite and on
a real PostgreSQL server (`pg_server.py`) where the database matters.

The weight-space model is a micro model (0.2 M parameters) that was never trained: it knows none of
the request's people, so a gentle unlearning leaves it `removed` by the gold-free verdict (it is as
ignorant of them as of the reference people), and a request with a single biography passage is
`inconclusive` (one passage cannot bound the Min-K% test), which the worker records as
suppressed_only. That keeps every job to a few seconds; what is tested is the worker, not a method.
"""

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import sqlalchemy as sa
import torch
from typer.testing import CliRunner

from obliviate.cli import app
from obliviate.config import load_config
from obliviate.data import build_benchmark
from obliviate.errors import ObliviateError
from obliviate.ledger import (Event, Request, current_model_version, directory_sha256, list_model_versions,
                              open_ledger, protected_facts, submit, verify_chain)
from obliviate.ledger.claim import claim_batch, claimer_alive, heartbeat, reclaim_stale, worker_identity
from obliviate.ledger.models import utcnow
from obliviate.ledger.worker import run_worker
from obliviate.methods.exact import S3TConfig, S3TStore
from obliviate.methods.exact.lineage import Lineage
from obliviate.models.tiny import build_tiny_model
from obliviate.models.tokenizer import train_tokenizer
from pg_server import db_url, pg_server  # noqa: F401 - the fixtures
from test_ledger import dump, one_line_error, sqlite_path

ROOT = Path(__file__).resolve().parents[1]
# Verification cheap enough for a test: no attacks, 100 bootstrap draws, the AUC margin micro's few
# people can reach; two gentle steps of gradient_difference (the untrained model stays removed).
FAST = ["threads=1", "verdict.auc_margin=0.25", "verdict.bootstrap=100", "attacks.names=[]",
        "method_args.gradient_difference={lr: 0.00001, steps: 2, retain_weight: 3, eval_every: 0}"]
METHOD = "gradient_difference"


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def micro(tmp_path_factory):
    """micro's benchmark and an untrained micro model saved as a Hugging Face directory."""
    cfg = load_config("micro")
    bench = build_benchmark(cfg.data)
    tok = train_tokenizer(bench.all_text(), cfg.model.vocab_size)
    model_dir = tmp_path_factory.mktemp("micro") / "untrained"
    build_tiny_model(cfg.model, tok, 0).save_pretrained(model_dir)
    tok.save_pretrained(model_dir)
    return bench, tok, model_dir


@pytest.fixture(scope="module")
def s3t_store(micro, tmp_path_factory):
    """An S3T store trained on micro's people (2 shards x 2 slices, 1 epoch: seconds)."""
    bench, tok, model_dir = micro
    from transformers import AutoConfig

    path = tmp_path_factory.mktemp("s3t") / "store"
    S3TStore.create(path, tok, AutoConfig.from_pretrained(model_dir), bench,
                    S3TConfig(shards=2, slices=2, sequences=2, epochs=1, base_epochs=1, lora_r=2), seed=0)
    return path


# --- request files from the benchmark ------------------------------------------------------------

def _qa(records: list[dict]) -> list[dict]:
    return [{"subject": r["person"], **{k: v for k, v in r.items() if k != "person"}} for r in records]


def _jsonl(path: Path, rows: list[dict]) -> str:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path.name


def data_request(folder: Path, bench, forget: list[dict], *, passages: list[dict] = (), reference: int = 3,
                 retain: int = 2) -> Path:
    """A data request: `forget` QA records (+ passages), `reference` holdout people, `retain` retain people."""
    folder.mkdir(parents=True, exist_ok=True)
    hold, kept = bench.people("holdout")[:reference], bench.people("retain")[-retain:]
    spec = {"kind": "data", "forget": _jsonl(folder / "forget.jsonl", _qa(forget) + [
                {"subject": p["person"], "text": p["text"]} for p in passages]),
            "reference": _jsonl(folder / "reference.jsonl", _qa([r for r in bench.holdout if r["person"] in hold]))}
    if retain:
        spec["retain"] = _jsonl(folder / "retain.jsonl", _qa([r for r in bench.retain if r["person"] in kept]))
    (folder / "request.yaml").write_text("".join(f"{k}: {v}\n" for k, v in spec.items()))
    return folder / "request.yaml"


def knowledge_request(folder: Path, forget: list[dict]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    probes = [{"question": f"Which city did {r['person']} come from?", "choices": [r["answer"], "Atlantis-on-Sea"],
               "answer": 0} for r in forget[:2]]
    _jsonl(folder / "forget.jsonl", _qa(forget) + probes)
    (folder / "request.yaml").write_text("kind: knowledge\nforget: forget.jsonl\n")
    return folder / "request.yaml"


def person(bench, split: str, i: int) -> list[dict]:
    name = bench.people(split)[i]
    return [r for r in bench.split(split) if r["person"] == name]


# --- helpers ---------------------------------------------------------------------------------------

def cli(*args) -> object:
    return CliRunner().invoke(app, [str(a) for a in args])


def sets(*extra: str) -> list[str]:
    return [a for s in [*FAST, *extra] for a in ("--set", s)]


def add_model(db_url: str, path: Path) -> None:
    result = cli("models", "add", path, "--db", db_url)
    assert result.exit_code == 0, result.output


def events_of(session, request_id: int) -> list[Event]:
    return list(session.scalars(sa.select(Event).where(Event.request_id == request_id).order_by(Event.id)))


def assert_versions_sound(session, versions_dir: Path) -> None:
    """Every directory under versions_dir is a registered version whose files match their checksum;
    no scratch directory is left."""
    rows = {Path(v.path): v for v in list_model_versions(session)}
    names = sorted(p.name for p in versions_dir.iterdir()) if versions_dir.exists() else []
    assert not [n for n in names if n.startswith(".")], names
    for p in versions_dir.iterdir() if versions_dir.exists() else []:
        if p.name == "evidence":
            continue
        assert p in rows, f"{p} has no model_versions row"
        assert directory_sha256(p) == rows[p].weights_sha256


def start_worker(tmp_path: Path, name: str, *args) -> tuple[subprocess.Popen, Path]:
    log = tmp_path / f"{name}.log"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false", "COLUMNS": "200"}
    proc = subprocess.Popen([sys.executable, "-m", "obliviate.cli", "worker", *map(str, args)], cwd=tmp_path,
                            stdout=subprocess.DEVNULL, stderr=open(log, "w"), env=env)
    return proc, log


def wait_for(condition, timeout: float, what: str, proc: subprocess.Popen | None = None, log: Path | None = None):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"worker exited ({proc.returncode}) before {what}: {log.read_text()[-2000:]}")
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}" + (f": {log.read_text()[-2000:]}" if log else ""))


def status_of(ledger, request_id: int) -> str:
    with ledger.begin() as s:
        return s.get(Request, request_id).status


# --- one request, start to end --------------------------------------------------------------------

def test_one_request_end_to_end_removed_with_a_checksummed_version(micro, db_url, tmp_path):
    bench, _, model_dir = micro
    forget = person(bench, "forget", 0)
    add_model(db_url, model_dir)
    sub = cli("request", "submit", data_request(tmp_path / "req", bench, forget), "--db", db_url, "--json")
    assert sub.exit_code == 0, sub.output
    rid = json.loads(sub.stdout)["id"]
    versions = tmp_path / "versions"
    result = cli("worker", "--once", "--db", db_url, "--method", METHOD, "--config", "micro", *sets(),
                 "--versions-dir", versions, "--json")
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["removed"] == [rid] and summary["jobs"] == 1 and summary["versions"] == [2]
    with open_ledger(db_url) as ledger, ledger.begin() as s:
        request, version = s.get(Request, rid), current_model_version(s)
        assert (request.status, request.attempts, request.model_version_id) == ("removed", 1, version.id)
        assert request.claimed_by == summary["worker_id"] and request.payload is None
        assert Path(version.path) == (versions / "v2").resolve() and version.parent_id == 1
        assert version.weights_sha256 == directory_sha256(version.path) and version.request_ids == [rid]
        evidence = json.loads(Path(version.evidence_path).read_text())
        assert evidence["verdict"] == "removed" and evidence["method"] == METHOD
        for name in ("evidence.json", "evidence.html"):  # the version's evidence names nobody it forgot
            assert forget[0]["person"] not in (Path(version.path) / name).read_text()
        assert request.evidence["after"]["verdict"] == "removed"
        assert [e.type for e in events_of(s, rid)] == ["received", "suppressed", "queued", "unlearning", "verifying",
                                                       "removed"]
        assert protected_facts(s) == []  # a data request drops its guard once removed
        assert_versions_sound(s, versions)
        text = dump(ledger, sqlite_path(db_url) if db_url.startswith("sqlite") else None)
    assert forget[0]["person"] not in text and forget[0]["question"] not in text  # payload purged
    assert cli("ledger", "verify", "--db", db_url).exit_code == 0


def test_an_inconclusive_verdict_ends_suppressed_only_keeping_the_guard_and_the_version(micro, tmp_path):
    bench, _, model_dir = micro
    db = f"sqlite:///{tmp_path / 'ledger.db'}"
    add_model(db, model_dir)
    passage = [b for b in bench.bios_of("forget") if b["person"] == bench.people("forget")[1]]
    with open_ledger(db) as ledger:
        with ledger.begin() as s:
            rid = submit(s, data_request(tmp_path / "req", bench, person(bench, "forget", 1), passages=passage),
                         actor="test").request.id
        summary = run_worker(ledger, once=True, batch_window_s=0, method=METHOD, cfg=load_config("micro", FAST),
                             versions_dir=tmp_path / "versions")
        assert summary["suppressed_only"] == [rid] and summary["versions"] == []
        with ledger.begin() as s:
            request = s.get(Request, rid)
            assert request.status == "suppressed_only" and request.last_error.startswith("inconclusive: mia_")
            assert "forget subjects would decide it" in request.last_error
            assert request.payload is None and request.guard_facts  # only what the guard needs
            assert {f["request_id"] for f in protected_facts(s)} == {rid}
            assert current_model_version(s).id == 1  # no new version
            event = events_of(s, rid)[-1]
            assert event.details["verdict"] == "inconclusive" and Path(event.details["evidence_path"]).is_file()
            assert_versions_sound(s, tmp_path / "versions")


def test_a_failing_job_is_retried_up_to_max_attempts_then_failed(micro, tmp_path):
    bench, _, model_dir = micro
    db = f"sqlite:///{tmp_path / 'ledger.db'}"
    add_model(db, model_dir)
    # 1 reference person = 10 records: fewer than the membership test needs, so `forget` refuses the job
    small = data_request(tmp_path / "req", bench, person(bench, "forget", 2), reference=1)
    assert cli("request", "submit", small, "--db", db).exit_code == 0
    result = cli("worker", "--once", "--db", db, "--config", "micro", "--method", METHOD,
                 "--set", "verdict.auc_margin=0.05", "--max-attempts", "2", "--versions-dir", tmp_path / "v", "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["failed"] == [1] and json.loads(result.stdout)["retried"] == [1]
    with open_ledger(db) as ledger, ledger.begin() as s:
        request = s.get(Request, 1)
        assert (request.status, request.attempts, request.max_attempts) == ("failed", 2, 2)
        assert request.last_error.startswith("ObliviateError: ") and "too few for any power" in request.last_error
        assert [e.type for e in events_of(s, 1)][3:] == ["unlearning", "failed", "queued", "unlearning", "failed"]
        assert {f["request_id"] for f in protected_facts(s)} == {1}  # a failed request stays suppressed


# --- claiming -------------------------------------------------------------------------------------

def test_skip_locked_gives_two_concurrent_claims_disjoint_batches(micro, pg_server, tmp_path):
    bench, _, _ = micro
    url = pg_server.fresh_url()
    with open_ledger(url) as ledger:
        with ledger.begin() as s:
            for i, r in enumerate(bench.forget[:6]):
                submit(s, data_request(tmp_path / f"r{i}", bench, [r]), actor="test")
        got_b, errors = [], []

        def second():  # its SELECT skips the rows the first holds; its event append then waits for the commit
            try:
                with ledger.begin() as s:
                    got_b.extend(r.id for r in claim_batch(s, "worker-b", 4))
            except BaseException as err:  # noqa: BLE001 - reported below
                errors.append(err)

        with ledger.begin() as first:
            got_a = [r.id for r in claim_batch(first, "worker-a", 4)]  # rows 1-4 stay locked until the commit
            racer = threading.Thread(target=second)
            racer.start()
            racer.join(1.0)
            assert racer.is_alive()  # blocked behind the first transaction, not done with rows 1-4
        racer.join(30)
        assert errors == [] and got_a == [1, 2, 3, 4] and got_b == [5, 6]
        with ledger.begin() as s:
            assert [r.claimed_by for r in s.scalars(sa.select(Request).order_by(Request.id))] == ["worker-a"] * 4 + [
                "worker-b"] * 2
            assert verify_chain(s).ok


def test_reclaim_by_lease_and_by_dead_pid_and_spent_attempts(micro, db_url, tmp_path):
    bench, _, _ = micro
    dead = subprocess.Popen(["sleep", "30"])
    dead_id = worker_identity(dead.pid)
    dead.kill()
    dead.wait()
    assert claimer_alive(dead_id) is False and claimer_alive(worker_identity()) is True
    assert claimer_alive("elsewhere:12:34") is None  # another host: only the lease can tell
    with open_ledger(db_url) as ledger:
        with ledger.begin() as s:
            for i, r in enumerate(bench.forget[:4]):
                submit(s, data_request(tmp_path / f"r{i}", bench, [r]), actor="test", max_attempts=2 if i == 3 else 3)
            claimed = {r.id: r for r in claim_batch(s, "placeholder", 4)}
            claimed[1].claimed_by = dead_id                      # its process is gone
            claimed[2].claimed_by = "elsewhere:12:34"            # silent for 20 minutes
            claimed[2].claimed_at = utcnow().replace(year=2000)
            claimed[3].claimed_by = "elsewhere:56:78"            # silent as long, but its heartbeat renews it
            claimed[3].claimed_at = utcnow().replace(year=2000)
            claimed[4].claimed_by, claimed[4].attempts = dead_id, 2   # its last attempt
        with ledger.begin() as s:
            assert heartbeat(s, "elsewhere:56:78") == 1
        with ledger.begin() as s:
            done = {r["id"]: r for r in reclaim_stale(s, worker_identity(), lease_s=600)}
        assert sorted(done) == [1, 2, 4] and done[1]["to"] == done[2]["to"] == "queued" and done[4]["to"] == "failed"
        assert "no longer running" in done[1]["reason"] and "not renewed" in done[2]["reason"]
        with ledger.begin() as s:
            assert [s.get(Request, i).status for i in (1, 2, 3, 4)] == ["queued", "queued", "unlearning", "failed"]
            assert "did not finish" in s.get(Request, 4).last_error
            assert events_of(s, 1)[-1].details["reclaimed_from"] == dead_id and verify_chain(s).ok


# --- exact stores ---------------------------------------------------------------------------------

class BackgroundWorker:
    """run_worker in a thread, as a long-running worker process would run it."""

    def __init__(self, ledger, versions_dir: Path, **kw):
        self.stop, self.lines, self.error = threading.Event(), [], None
        self.summary = None

        def target():
            try:
                self.summary = run_worker(ledger, once=False, method=METHOD, cfg=load_config("micro", FAST),
                                          versions_dir=versions_dir, stop=self.stop, log=self.lines.append,
                                          **{"batch_window_s": 0, "poll_s": 0.05, **kw})
            except BaseException as err:  # noqa: BLE001 - reported by close()
                self.error = err

        self.thread = threading.Thread(target=target, daemon=True)
        self.thread.start()
        wait_for(lambda: any("ready" in line for line in self.lines) or self.error, 30, "the worker to start")

    def close(self) -> dict:
        self.stop.set()
        self.thread.join(60)
        assert not self.thread.is_alive() and self.error is None, self.error
        return self.summary


def submit_until_removed(ledger, request_file: Path) -> tuple[int, float]:
    """Submit `request_file`, wait for `removed`: (request id, seconds from submission)."""
    start = time.monotonic()
    with ledger.begin() as s:
        rid = submit(s, request_file, actor="test").request.id
    wait_for(lambda: status_of(ledger, rid) == "removed", 30, "removed")
    return rid, time.monotonic() - start


def test_exact_deletion_on_an_s3t_store_is_removed_within_5s_and_queues_retraining(micro, s3t_store, db_url,
                                                                                      tmp_path):
    bench, _, _ = micro
    add_model(db_url, s3t_store)
    forget = person(bench, "retain", 3)
    bio = [b for b in bench.bios_of("retain") if b["person"] == forget[0]["person"]]
    request_file = data_request(tmp_path / "req", bench, forget, passages=bio)
    versions = tmp_path / "versions"
    with open_ledger(db_url) as ledger:
        worker = BackgroundWorker(ledger, versions)
        try:
            rid, elapsed = submit_until_removed(ledger, request_file)
            try:
                wait_for(lambda: any("retrained:" in line for line in worker.lines), 60, "background retraining")
            except AssertionError:
                raise AssertionError("\n".join(worker.lines)) from None
        finally:
            summary = worker.close()
        assert elapsed < 5, f"submission to removed took {elapsed:.1f} s"
        with ledger.begin() as s:
            request, versions_ = s.get(Request, rid), list_model_versions(s)
            deleted, retrained = versions_[1], versions_[2]
            assert request.model_version_id == deleted.id and deleted.details["exact"] is True
            assert [e.type for e in events_of(s, rid)][-2:] == ["unlearning", "removed"]  # no verification loop
            proof = events_of(s, rid)[-1].details["lineage"]
            items = sum(len(r["phrasings"]) for r in forget) + 1  # every phrasing, and the biography
            assert proof["store"] == "s3t" and proof["items"] == proof["deleted_now"] == items
            assert proof["never_trained"] == proof["public"] == 0 and len(proof["positions"]) == 1
            assert request.evidence["lineage"]["deleted_now"] == items
            assert json.loads(Path(deleted.evidence_path).read_text())["requests"][str(rid)] == proof
            queued = s.scalars(sa.select(Event).where(Event.type == "retrain_queued")).one()
            assert queued.details["model_version_id"] == deleted.id and queued.details["queue"]
            assert deleted.details["retrain_queued"] == queued.details["queue"]
            done = s.scalars(sa.select(Event).where(Event.type == "retrained")).one()
            assert done.details["model_version_id"] == retrained.id and retrained.parent_id == deleted.id
            assert_versions_sound(s, versions)
            assert verify_chain(s).ok
        assert summary["removed"] == [rid] and summary["retrained"] == [retrained.id]
    record = Lineage.load(Path(deleted.path) / "lineage.json")
    mine = [r for r in record.items.values() if r["person"] == forget[0]["person"]]
    assert mine and all(r["deleted"] and r["completion"] is None for r in mine)  # the store forgot the text
    assert record.state["queue"] and Lineage.load(Path(retrained.path) / "lineage.json").state["queue"] == []


@pytest.mark.slow  # trains the tiny preset's S3T store (5 shards x 2 orders x 2 blocks, 12 epochs): minutes
def test_exact_deletion_on_the_tiny_presets_s3t_store_is_removed_within_5s(tmp_path):
    cfg = load_config("tiny")
    bench = build_benchmark(cfg.data)
    tok = train_tokenizer(bench.all_text(), cfg.model.vocab_size)
    store = tmp_path / "s3t"
    S3TStore.create(store, tok, build_tiny_model(cfg.model, tok, cfg.seed).config, bench, cfg.method_config("s3t"),
                    seed=cfg.seed)
    db = f"sqlite:///{tmp_path / 'ledger.db'}"
    add_model(db, store)
    forget = person(bench, "forget", 0)
    request_file = data_request(tmp_path / "req", bench, forget)
    with open_ledger(db) as ledger:
        # No background retraining: draining the tiny store's deactivated blocks takes minutes
        # (the micro test above covers it); the queue is still recorded.
        worker = BackgroundWorker(ledger, tmp_path / "versions", retrain=False)
        try:
            rid, elapsed = submit_until_removed(ledger, request_file)
        finally:
            worker.close()
        assert elapsed < 5, f"submission to removed took {elapsed:.1f} s"
        print(f"tiny S3T store: submission to removed in {elapsed:.2f} s")
        with ledger.begin() as s:
            proof = events_of(s, rid)[-1].details["lineage"]
            assert proof["store"] == "s3t" and proof["deleted_now"] == sum(len(r["phrasings"]) for r in forget)
            assert s.scalars(sa.select(Event).where(Event.type == "retrain_queued")).one().details["queue"]
            assert verify_chain(s).ok


def test_requests_arriving_within_the_batch_window_share_one_job(micro, s3t_store, tmp_path):
    bench, _, _ = micro
    db = f"sqlite:///{tmp_path / 'ledger.db'}"
    add_model(db, s3t_store)
    files = [data_request(tmp_path / f"r{i}", bench, person(bench, "retain", 6 + i)) for i in range(4)]
    with open_ledger(db) as ledger:
        worker = BackgroundWorker(ledger, tmp_path / "versions", batch_window_s=1.5, batch_size=3, retrain=False)
        try:
            for f in files:  # four arrivals 0.2 s apart, inside one window
                with ledger.begin() as s:
                    submit(s, f, actor="test")
                time.sleep(0.2)
            wait_for(lambda: all(status_of(ledger, i) == "removed" for i in range(1, 5)), 30, "4 removed")
        finally:
            summary = worker.close()
        assert summary["jobs"] == 2  # the window gathered all four; the batch size cut them 3 + 1
        with ledger.begin() as s:
            batches = {tuple(e.details["batch"]) for e in s.scalars(sa.select(Event).where(Event.type == "unlearning"))}
            assert batches == {(1, 2, 3), (4,)}
            first = min(r.received_at for r in s.scalars(sa.select(Request)))
            claimed = min(e.at for e in s.scalars(sa.select(Event).where(Event.type == "unlearning")))
            assert (claimed - first).total_seconds() >= 1.5  # not claimed before the oldest was a window old


def test_knowledge_keeps_its_guard_after_removal_and_data_drops_it(micro, s3t_store, tmp_path):
    bench, _, _ = micro
    db = f"sqlite:///{tmp_path / 'ledger.db'}"
    add_model(db, s3t_store)
    with open_ledger(db) as ledger:
        with ledger.begin() as s:
            data = submit(s, data_request(tmp_path / "d", bench, person(bench, "retain", 4)), actor="t").request.id
            know = submit(s, knowledge_request(tmp_path / "k", person(bench, "retain", 5)), actor="t").request.id
            unknown = [{"person": "Nobody Known", "question": "Where was Nobody Known born?", "answer": "Nowhere",
                        "phrasings": ["Where was Nobody Known born?"], "perturbed_answers": ["Elsewhere"]}]
            never = submit(s, data_request(tmp_path / "n", bench, unknown), actor="t").request.id
        summary = run_worker(ledger, once=True, batch_window_s=0, method=METHOD, cfg=load_config("micro", FAST),
                             versions_dir=tmp_path / "versions", retrain=False)
        assert summary["jobs"] == 2  # data and knowledge requests never share a job
        assert sorted(summary["removed"]) == [data, know] and summary["suppressed_only"] == [never]
        with ledger.begin() as s:
            held = {f["request_id"] for f in protected_facts(s)}
            assert held == {know, never}
            assert s.get(Request, data).payload is None
            assert s.get(Request, know).payload is None and s.get(Request, know).guard_facts
            assert "none of the 1 training items" in s.get(Request, never).last_error
            unlearning = [e for e in events_of(s, data) + events_of(s, know) if e.type == "unlearning"]
            assert len({tuple(e.details["batch"]) for e in unlearning}) == 2


# --- two workers, kill -9 -------------------------------------------------------------------------

def test_two_worker_processes_on_postgres_take_each_of_50_requests_once(micro, s3t_store, pg_server, tmp_path):
    bench, _, _ = micro
    url = pg_server.fresh_url()
    add_model(url, s3t_store)
    versions = tmp_path / "versions"
    common = ["--db", url, "--batch-window", "0", "--batch-size", "5", "--poll", "0.1", "--versions-dir", versions,
              "--no-retrain", "--config", "micro"]
    workers = [start_worker(tmp_path, name, *common, "--worker-id", name) for name in ("worker-a", "worker-b")]
    try:
        for proc, log in workers:
            wait_for(lambda log=log: "ready" in log.read_text(), 120, "the worker to start", proc, log)
        facts = bench.retain[:50]
        with open_ledger(url) as ledger:
            with ledger.begin() as s:
                ids = [submit(s, data_request(tmp_path / f"r{i}", bench, [r], retain=0), actor="test").request.id
                       for i, r in enumerate(facts)]

            def finished():
                with ledger.begin() as s:
                    return s.scalar(sa.select(sa.func.count()).where(Request.status == "removed")) == 50
            wait_for(finished, 120, "50 removed requests", *workers[0])
            for proc, _ in workers:
                proc.send_signal(signal.SIGTERM)
            codes = [proc.wait(60) for proc, _ in workers]
            with ledger.begin() as s:
                unlearning = s.scalars(sa.select(Event).where(Event.type == "unlearning")).all()
                removed = s.scalars(sa.select(Event).where(Event.type == "removed")).all()
                assert sorted(e.request_id for e in unlearning) == ids  # each claimed once ...
                assert sorted(e.request_id for e in removed) == ids     # ... and finished once
                assert {e.actor for e in unlearning} == {"worker-a", "worker-b"}
                assert all(r.attempts == 1 for r in s.scalars(sa.select(Request)))
                chain = [v for v in list_model_versions(s)]
                assert [v.parent_id for v in chain[1:]] == [v.id for v in chain[:-1]]  # one line of versions
                assert sorted(i for v in chain for i in v.request_ids) == ids
                assert_versions_sound(s, versions)
                assert verify_chain(s).ok
    finally:
        for proc, _ in workers:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    assert codes == [0, 0]  # SIGTERM: stopped cleanly between jobs
    record = Lineage.load(Path(chain[-1].path) / "lineage.json")  # the newest store lost none of the deletions
    gone = {r["person"] for r in record.items.values() if r["deleted"]}
    assert {r["person"] for r in facts} <= gone


@pytest.mark.parametrize("db_url", ["sqlite", pytest.param("postgresql", marks=pytest.mark.slow)], indirect=True)
def test_kill_9_while_unlearning_leaves_the_request_claimable_with_attempts_2(micro, db_url, tmp_path):
    bench, _, model_dir = micro
    add_model(db_url, model_dir)
    assert cli("request", "submit", data_request(tmp_path / "req", bench, person(bench, "forget", 0)),
               "--db", db_url).exit_code == 0
    versions = tmp_path / "versions"
    slow = [*sets(f"method_args.{METHOD}.steps=2000"), "--config", "micro", "--method", METHOD]
    proc, log = start_worker(tmp_path, "doomed", "--once", "--db", db_url, "--versions-dir", versions, *slow)
    with open_ledger(db_url) as ledger:
        try:
            wait_for(lambda: status_of(ledger, 1) == "unlearning", 120, "unlearning", proc, log)
            time.sleep(0.5)  # into the job: its scratch directory is being written
            proc.send_signal(signal.SIGKILL)
            proc.wait(30)
        finally:
            if proc.poll() is None:
                proc.kill()
        with ledger.begin() as s:
            request = s.get(Request, 1)
            assert (request.status, request.attempts) == ("unlearning", 1)
            assert claimer_alive(request.claimed_by) is False
        assert [p.name for p in versions.iterdir() if p.name.startswith(".job-")]  # the dead job's leftovers
        (versions / "v7").mkdir()  # as if killed between the rename and the commit of a version
        result = cli("worker", "--once", "--db", db_url, "--versions-dir", versions, "--config", "micro",
                     "--method", METHOD, *sets(), "--json")
        assert result.exit_code == 0, result.output
        assert json.loads(result.stdout)["reclaimed"] == [1]
        with ledger.begin() as s:
            request = s.get(Request, 1)
            assert (request.status, request.attempts) == ("removed", 2), request.last_error
            types = [e.type for e in events_of(s, 1)]
            assert types[3:] == ["unlearning", "queued", "unlearning", "verifying", "removed"]
            assert "no longer running" in events_of(s, 1)[4].details["reason"]
            assert_versions_sound(s, versions)  # no scratch left, no version without its checksum row
            assert [Path(v.path).name for v in list_model_versions(s)][1:] == ["v2"]
    assert cli("ledger", "verify", "--db", db_url).exit_code == 0


@pytest.mark.slow  # a third worker process (~15 s); the default suite stops workers with SIGTERM when idle
def test_sigterm_during_a_job_finishes_it_and_stops_before_the_next(micro, tmp_path):
    bench, _, model_dir = micro
    db = f"sqlite:///{tmp_path / 'ledger.db'}"
    add_model(db, model_dir)
    with open_ledger(db) as ledger:
        with ledger.begin() as s:
            for i in (0, 1):
                submit(s, data_request(tmp_path / f"r{i}", bench, person(bench, "forget", i)), actor="test")
        proc, log = start_worker(tmp_path, "stopping", "--db", db, "--batch-window", "0", "--batch-size", "1",
                                 "--versions-dir", tmp_path / "versions", "--config", "micro", "--method", METHOD,
                                 *sets(f"method_args.{METHOD}.steps=60", f"method_args.{METHOD}.lr=1e-8"))
        try:
            wait_for(lambda: status_of(ledger, 1) == "unlearning", 120, "unlearning", proc, log)
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(120) == 0, log.read_text()[-2000:]
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        assert "stopping after the running job" in log.read_text()
        assert [status_of(ledger, i) for i in (1, 2)] == ["removed", "queued"]  # finished; the next one not taken
        with ledger.begin() as s:
            assert_versions_sound(s, tmp_path / "versions")


# --- bad input --------------------------------------------------------------------------------------

def test_worker_bad_input_is_one_line_and_exit_2(db_url, tmp_path):
    with open_ledger(db_url):
        pass  # an empty ledger: no model version yet
    one_line_error(cli("worker", "--once", "--db", db_url), "has no model version to unlearn from",
                   "obliviate models add PATH")
    one_line_error(cli("worker", "--db", db_url, "--batch-window", "soon"), "--batch-window 'soon' is not a duration")
    one_line_error(cli("models", "add", tmp_path / "nothing-here", "--db", db_url), "not found")
    (tmp_path / "notes").mkdir()
    one_line_error(cli("models", "add", tmp_path / "notes", "--db", db_url), "no config.json")
    with pytest.raises(ObliviateError, match="exact method"):
        with open_ledger(db_url) as ledger:
            run_worker(ledger, once=True, batch_window_s=0, method="s3t", cfg=load_config("micro"),
                       versions_dir=tmp_path)


def test_worker_on_an_unreachable_database_exits_2(tmp_path):
    one_line_error(cli("worker", "--once", "--db", f"postgresql+psycopg://ops:pw@/ledger?host={tmp_path}"),
                   "cannot open the ledger database", "start the server")
    one_line_error(cli("worker", "--once", "--db", tmp_path / "typo.db"), "typo.db does not exist")


# --- a model larger than one device -----------------------------------------------------------------

def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.slow
@pytest.mark.parametrize("launcher", ["cpu_1proc.yaml", "ddp.yaml --num_processes 2"])
def test_a_job_runs_under_accelerate_launch(micro, tmp_path, launcher, monkeypatch):
    bench, _, model_dir = micro
    db = f"sqlite:///{tmp_path / 'ledger.db'}"
    add_model(db, model_dir)
    assert cli("request", "submit", data_request(tmp_path / "req", bench, person(bench, "forget", 0)),
               "--db", db).exit_code == 0
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")  # CPU processes (gloo), as tests/test_distributed.py runs them
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    launch = f"accelerate launch --main_process_port {free_port()} --config_file {ROOT / 'configs/accelerate'}/{launcher}"
    result = cli("worker", "--once", "--db", db, "--versions-dir", tmp_path / "v", "--config", "micro", "--method",
                 METHOD, *sets(), "--launch", launch, "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["removed"] == [1]
    with open_ledger(db) as ledger, ledger.begin() as s:
        version = current_model_version(s)
        assert version.weights_sha256 == directory_sha256(version.path)
        assert (Path(version.path) / "evidence.json").is_file()
