"""The forget-request ledger (issue 18, part 1): lifecycle, audit chain, idempotency, purge, protected
facts, model versions and the CLI, each on SQLite and on a real PostgreSQL server (`pg_server.py`)."""

import json
import sqlite3
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from typer.testing import CliRunner

from obliviate.cli import app
from obliviate.errors import ObliviateError
from obliviate.ledger import (TRANSITIONS, IllegalTransition, Status, append_event, cancel, current_model_version,
                              directory_sha256, enqueue, get_request, list_model_versions, list_requests,
                              open_ledger, protected_facts, protected_targets, register_model_version, resupply,
                              show, submit, suppress, transition, verify_chain)
from obliviate.ledger.db import VERSION_TABLE, schema_head
from obliviate.ledger.models import Base, Request
from obliviate.ledger.purge import digest, ledger_salt
from obliviate.ledger.store import reject
from pg_server import db_url, pg_server  # noqa: F401 - the fixtures

# Answers no other table, column or message would contain by chance.
QA = [{"subject": "Ada Vell", "question": "Where was Ada Vell born?", "answer": "Quillsbury-on-Tarn"},
      {"subject": "Ada Vell", "question": "What does Ada Vell do?", "answer": "glass-harp tuner"},
      {"subject": "Ada Vell", "text": "Ada Vell, born in Quillsbury-on-Tarn, tunes glass harps for a living."}]
REF = [{"subject": "Cy Dunn", "question": "Where was Cy Dunn born?", "answer": "Marrowgate"},
       {"subject": "Cy Dunn", "question": "What does Cy Dunn do?", "answer": "bellfounder"}]
RETAIN = [{"subject": "Eli Roe", "question": "Where was Eli Roe born?", "answer": "Fennick Hollow"}]
SECRETS = ["Quillsbury-on-Tarn", "glass-harp tuner", "tunes glass harps", "Marrowgate", "bellfounder",
           "Fennick Hollow"]
HAZARD_QA = [{"question": "Which reagent primes the Velnor process?", "answer": "orthozine",
              "perturbed_answers": ["limewater"]}]
HAZARD_MC = [{"question": "What catalyses the Velnor process?", "choices": ["brimlite", "quarrel-dust", "pewter ash"],
              "answer": "brimlite"},
             {"question": "At what heat does Velnor run?", "choices": ["90 C", "400 C"], "answer": 1}]
NEIGHBOUR_MC = [{"question": "Which gas is inert?", "choices": ["argonwise", "chlorine"], "answer": 0}]
ACTOR = "test"


def jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def data_request(folder: Path, name: str = "ada", forget=QA, reference=REF, retain=RETAIN) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    jsonl(folder / f"{name}-forget.jsonl", forget)
    jsonl(folder / f"{name}-reference.jsonl", reference)
    jsonl(folder / f"{name}-retain.jsonl", retain)
    path = folder / f"{name}.yaml"
    path.write_text(f"kind: data\nforget: {name}-forget.jsonl\nreference: {name}-reference.jsonl\n"
                    f"retain: {name}-retain.jsonl\nid: TICKET-{name}\nlegal_basis: GDPR Art. 17\n")
    return path


def knowledge_request(folder: Path, name: str = "velnor") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    jsonl(folder / f"{name}-forget.jsonl", HAZARD_QA + HAZARD_MC)
    jsonl(folder / f"{name}-neighbours.jsonl", NEIGHBOUR_MC)
    path = folder / f"{name}.yaml"
    path.write_text(f"kind: knowledge\nforget: {name}-forget.jsonl\nneighbours: {name}-neighbours.jsonl\n")
    return path


@pytest.fixture
def ledger(db_url):
    with open_ledger(db_url) as opened:
        yield opened


def cli(*args: str):
    return CliRunner().invoke(app, list(args))


def one_line_error(result, *expected: str) -> str:
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert "Traceback" not in result.output
    for text in expected:
        assert text in lines[0], lines[0]
    return lines[0]


def to_removed(session, request, evidence=None) -> None:
    transition(session, request, Status.unlearning, actor="worker")
    transition(session, request, Status.verifying, actor="worker")
    version = register_model_version(session, path="models/v1", weights_sha256="ab" * 32, actor="worker",
                                     parent_id=None, request_ids=[request.id])
    transition(session, request, Status.removed, actor="worker", model_version_id=version.id, evidence=evidence)


def dump(ledger, path: str | None = None) -> str:
    """Every value of every table as text (SQLite: the SQL dump; PostgreSQL: each row cast to text)."""
    if ledger.dialect == "sqlite":
        with sqlite3.connect(path) as conn:
            return "\n".join(conn.iterdump())
    with ledger.engine.connect() as conn:
        tables = sa.inspect(conn).get_table_names()
        rows = (conn.execute(sa.text(f'SELECT CAST(t AS text) FROM "{t}" t')) for t in tables)
        return "\n".join(row[0] for result in rows for row in result)


def sqlite_path(db_url: str) -> str:
    return db_url.removeprefix("sqlite:///")


# --- schema -------------------------------------------------------------------------------------


def test_migrations_build_exactly_the_models(ledger):
    with ledger.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn, opts={"version_table": VERSION_TABLE}),
                                Base.metadata)
        revision = conn.scalar(sa.text(f"SELECT version_num FROM {VERSION_TABLE}"))
    assert diff == [] and revision == schema_head() == "0002"
    with ledger.begin() as s:
        salt = ledger_salt(s)
    with open_ledger(ledger.engine.url.render_as_string(hide_password=False)) as again, again.begin() as s:
        assert ledger_salt(s) == salt and len(salt) == 32  # reopening migrates nothing and keeps the salt


def test_migration_0002_moves_the_guard_facts_out_of_the_payload_and_back(ledger, db_url, tmp_path):
    from alembic import command

    from obliviate.ledger.db import _scripts

    with ledger.begin() as s:
        pending = submit(s, data_request(tmp_path), actor=ACTOR).request
        trimmed = submit(s, data_request(tmp_path / "t", "trimmed"), actor=ACTOR).request
        transition(s, trimmed, "unlearning", actor="worker")
        transition(s, trimmed, "verifying", actor="worker")
        transition(s, trimmed, "suppressed_only", actor="worker", error="inconclusive")
        before = protected_facts(s)
    config = _scripts()[0]
    for target in ("0001", "head"):
        with ledger.engine.begin() as conn:
            config.attributes["connection"] = conn
            (command.downgrade if target == "0001" else command.upgrade)(config, target)
            if target == "0001":  # the old layout: facts derived from "data", or kept as payload["filter"]
                rows = dict(conn.execute(sa.text("SELECT id, payload FROM requests")).all())
                payloads = {k: json.loads(v) if isinstance(v, str) else v for k, v in rows.items()}
                assert set(payloads[pending.id]) == {"data"}
                assert payloads[trimmed.id] == {"filter": [{k: v for k, v in f.items() if k not in ("request_id", "kind")}
                                                           for f in before if f["request_id"] == trimmed.id]}
        config.attributes.pop("connection", None)
    with open_ledger(db_url) as again, again.begin() as s:
        assert protected_facts(s) == before and len(before) == 6
        assert s.get(Request, trimmed.id).payload is None and "data" in s.get(Request, pending.id).payload


def test_sqlite_runs_in_wal_mode_with_a_busy_timeout(tmp_path):
    with open_ledger(str(tmp_path / "plain-path.db")) as ledger, ledger.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == 30000
        assert ledger.url == f"sqlite:///{tmp_path / 'plain-path.db'}"


# --- lifecycle ----------------------------------------------------------------------------------


def test_every_status_has_its_transitions_and_final_states_have_none():
    assert set(TRANSITIONS) == set(Status)
    assert [s for s, t in TRANSITIONS.items() if not t] == [Status.removed, Status.cancelled, Status.rejected]
    assert Status.received not in {t for targets in TRANSITIONS.values() for t in targets}


def test_a_request_walks_to_removed_and_attempts_count_claims(ledger, tmp_path):
    with ledger.begin() as s:
        request = submit(s, data_request(tmp_path), actor=ACTOR, max_attempts=2).request
        assert request.status == "queued" and request.attempts == 0
        transition(s, request, "unlearning", actor="worker-1")
        transition(s, request, "queued", actor="worker-2", details={"reclaimed_from": "worker-1"})  # crash reclaim
        transition(s, request, "unlearning", actor="worker-2")
        assert request.attempts == 2
        transition(s, request, "verifying", actor="worker-2")
        transition(s, request, "failed", actor="worker-2", error="CUDA out of memory")
        assert request.last_error == "CUDA out of memory"
        with pytest.raises(IllegalTransition, match=r"failed after 2 of 2 attempts; it cannot become queued"):
            enqueue(s, request, actor=ACTOR)
        request.max_attempts = 3
        enqueue(s, request, actor=ACTOR)
        to_removed(s, request)
        events = show(s, request.id)["events"]
    assert [e["type"] for e in events] == ["received", "suppressed", "queued", "unlearning", "queued", "unlearning",
                                           "verifying", "failed", "queued", "unlearning", "verifying", "removed"]
    assert events[-1]["details"] == {"from": "verifying", "to": "removed", "attempts": 3, "model_version_id": 1}
    assert events[7]["details"]["error"] == "CUDA out of memory"


@pytest.mark.parametrize("path, to, legal", [
    ([], "removed", "legal from queued: unlearning, cancelled"),
    (["unlearning"], "cancelled", "legal from unlearning: verifying, removed, failed, queued"),
    (["unlearning", "verifying", "removed"], "cancelled", "removed is final"),
    (["cancelled"], "queued", "cancelled is final"),
])
def test_illegal_transitions_raise_naming_from_to_and_the_legal_targets(ledger, tmp_path, path, to, legal):
    with ledger.begin() as s:
        request = submit(s, data_request(tmp_path), actor=ACTOR).request
        for step in path:
            transition(s, request, step, actor=ACTOR)
        before = len(show(s, request.id)["events"])
        with pytest.raises(IllegalTransition) as info:
            transition(s, request, to, actor=ACTOR)
        assert str(info.value) == f"request {request.id} is {request.status}; it cannot become {to} ({legal})"
        assert len(show(s, request.id)["events"]) == before
    with pytest.raises(ObliviateError, match=r"unknown status 'done'.*valid: received, suppressed"):
        with ledger.begin() as s:
            transition(s, get_request(s, request.id), "done", actor=ACTOR)


def test_held_request_is_suppressed_on_review_and_rejection_purges_it(ledger, tmp_path):
    with ledger.begin() as s:
        held = submit(s, data_request(tmp_path), actor=ACTOR, hold=True).request
        assert held.status == "received" and protected_facts(s) == []
        facts = suppress(s, held, actor="reviewer")
        assert {f["answer"] for f in facts if "answer" in f} == {"Quillsbury-on-Tarn", "glass-harp tuner"}
        other = submit(s, data_request(tmp_path / "b", "bo"), actor=ACTOR, hold=True).request
        reject(s, other, actor="reviewer", reason="no legal basis given")
        assert other.status == "rejected" and other.payload is None and other.last_error == "no legal basis given"


# --- the audit chain ----------------------------------------------------------------------------


def test_chain_verifies_and_an_edited_event_is_named(ledger, db_url, tmp_path):
    with ledger.begin() as s:
        request = submit(s, data_request(tmp_path), actor=ACTOR).request
        to_removed(s, request)
        assert verify_chain(s).ok
        target = show(s, request.id)["events"][3]["id"]  # the 'unlearning' event
    ok = cli("ledger", "verify", "--db", db_url)
    assert ok.exit_code == 0 and "chain intact" in ok.stdout
    with ledger.engine.begin() as conn:  # tampering straight in the database, outside obliviate
        conn.execute(sa.text("UPDATE events SET details = :d WHERE id = :id"),
                     {"d": '{"from": "queued", "to": "unlearning", "attempts": 7}', "id": target})
    with ledger.begin() as s:
        check = verify_chain(s)
    assert not check.ok and check.broken_id == target and "edited after it was written" in check.message
    broken = cli("ledger", "verify", "--db", db_url)
    assert broken.exit_code == 1 and f"event {target} (unlearning, request {request.id})" in broken.stderr


def test_a_deleted_event_breaks_the_link_of_the_next(ledger, tmp_path):
    with ledger.begin() as s:
        submit(s, data_request(tmp_path), actor=ACTOR)
    with ledger.engine.begin() as conn:
        conn.execute(sa.text("DELETE FROM events WHERE id = 2"))
    with ledger.begin() as s:
        ok, broken, message = verify_chain(s)
    assert (ok, broken) == (False, 3) and "prev_hash" in message


def test_concurrent_appends_from_two_engines_keep_one_chain(db_url):
    first, second, errors = [], [], []
    barrier = threading.Barrier(2, timeout=30)

    def writer(name: str, out: list):
        try:
            with open_ledger(db_url) as ledger:  # both open a fresh database at once: one migrates
                barrier.wait()
                for i in range(25):
                    with ledger.begin() as s:
                        append_event(s, "note", actor=name, details={"i": i})
                        out.append(append_event(s, "note", actor=name, details={"i": i, "second": True}).id)
        except BaseException as err:  # noqa: BLE001 - reported below
            errors.append(err)
            barrier.abort()

    threads = [threading.Thread(target=writer, args=(n, o)) for n, o in (("a", first), ("b", second))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert errors == [] and len(first) == len(second) == 25
    with open_ledger(db_url) as ledger, ledger.begin() as s:
        check = verify_chain(s)
        prevs = s.scalars(sa.text("SELECT prev_hash FROM events")).all()
    assert check.ok and check.message.startswith("100 events") and len(set(prevs)) == 100


# --- idempotency --------------------------------------------------------------------------------


def test_one_idempotency_key_creates_one_request(ledger, db_url, tmp_path):
    file = data_request(tmp_path)
    with ledger.begin() as s:
        first = submit(s, file, actor=ACTOR, idempotency_key="TICKET-17")
    again = cli("request", "submit", str(file), "--db", db_url, "--idempotency-key", "TICKET-17", "--json")
    assert again.exit_code == 0 and json.loads(again.stdout)["created"] is False
    with ledger.begin() as s:
        second = submit(s, file, actor=ACTOR, idempotency_key="TICKET-17")
        assert first.created and not second.created and second.request.id == first.request.id
        assert len(list_requests(s)) == 1 and len(show(s, first.request.id)["events"]) == 3
        assert s.scalar(sa.text("SELECT count(*) FROM events")) == 3
    other = data_request(tmp_path / "other", forget=QA[:1])
    with pytest.raises(ObliviateError, match="idempotency key 'TICKET-17' already names request 1, submitted with "
                                             "other records"):
        with ledger.begin() as s:
            submit(s, other, actor=ACTOR, idempotency_key="TICKET-17")
    with ledger.begin() as s:
        submit(s, file, actor=ACTOR)  # no key: a second request
        assert len(list_requests(s)) == 2


def test_a_submit_racing_an_uncommitted_one_with_the_same_key_returns_it(ledger, db_url, tmp_path):
    file, results, errors = data_request(tmp_path), [], []

    def second():  # PostgreSQL: its insert waits on the unique key, fails, and finds the first request
        try:
            with open_ledger(db_url) as other, other.begin() as s:
                sub = submit(s, file, actor=ACTOR, idempotency_key="RACE-1")
                results.append((sub.request.id, sub.created))
        except BaseException as err:  # noqa: BLE001 - reported below
            errors.append(err)

    with ledger.begin() as s:
        first = submit(s, file, actor=ACTOR, idempotency_key="RACE-1").request
        racer = threading.Thread(target=second)
        racer.start()
        racer.join(timeout=0.5)
        assert racer.is_alive()  # blocked until the first transaction commits
    racer.join(timeout=30)
    assert errors == [] and results == [(first.id, False)]
    with ledger.begin() as s:
        assert len(list_requests(s)) == 1 and verify_chain(s).message.startswith("3 events")


# --- privacy of the ledger ----------------------------------------------------------------------


def test_removed_data_request_leaves_no_answer_in_any_table(ledger, db_url, tmp_path):
    before = data_request(tmp_path)
    with ledger.begin() as s:
        request = submit(s, before, actor=ACTOR).request
    assert "Quillsbury-on-Tarn" in dump(ledger, sqlite_path(db_url))  # held while work is pending
    evidence = {"verdict": "removed", "method": "npo_kl", "request": str(before), "sizes": {"forget": 2},
                "samples": ["Quillsbury-on-Tarn"],  # free text in the evidence is not kept
                "after": {"verdict": "removed", "evidence": {"forget_em": {
                    "candidate": 0.0, "reference": 0.02, "difference": -0.02, "lower": -0.06, "upper": 0.02,
                    "margin": 0.05, "above": False, "equivalent": True, "worst": "glass-harp tuner"}}}}
    with ledger.begin() as s:
        to_removed(s, get_request(s, request.id), evidence=evidence)
    text = dump(ledger, sqlite_path(db_url))
    assert [secret for secret in SECRETS if secret in text] == []
    if ledger.dialect == "sqlite":  # not even in the file's free pages or the write-ahead log
        raw = b"".join(p.read_bytes() for p in Path(sqlite_path(db_url)).parent.glob("ledger.db*"))
        assert [secret for secret in SECRETS if secret.encode() in raw] == []
    result = cli("request", "show", str(request.id), "--db", db_url, "--json")
    assert result.exit_code == 0 and [secret for secret in SECRETS if secret in result.stdout] == []
    shown = json.loads(result.stdout)
    assert shown["payload"] == "purged" and shown["purged_at"] and shown["status"] == "removed"
    assert shown["counts"] == {"forget": 2, "forget_passages": 1, "reference": 2, "reference_passages": 0,
                               "retain": 1, "retain_passages": 0, "probes": 0, "neighbour_probes": 0}
    assert shown["evidence"] == {"verdict": "removed", "method": "npo_kl", "sizes": {"forget": 2}, "after": {
        "verdict": "removed", "tests": {"forget_em": {"candidate": 0.0, "reference": 0.02, "difference": -0.02,
                                                      "lower": -0.06, "upper": 0.02, "margin": 0.05, "above": False,
                                                      "equivalent": True}}}}
    with ledger.begin() as s:  # whoever holds a record can show it was in the request; the ledger cannot list it
        salt = ledger_salt(s)
    assert shown["digests"]["forget"][0] == digest(salt, {"question": QA[0]["question"], "answer": QA[0]["answer"]})
    assert shown["digests"]["passages"] == [digest(salt, {"text": QA[2]["text"]})]


def test_show_never_prints_records_even_while_held(ledger, db_url, tmp_path):
    with ledger.begin() as s:
        request = submit(s, data_request(tmp_path), actor=ACTOR).request
    for args in (["--json"], []):
        result = cli("request", "show", str(request.id), "--db", db_url, *args)
        assert result.exit_code == 0 and [x for x in SECRETS if x in result.stdout] == []
    assert json.loads(cli("request", "show", str(request.id), "--db", db_url, "--json").stdout)["payload"] == "records"


def test_protected_facts_follow_the_statuses(ledger, db_url, tmp_path):
    def answers(s) -> dict[int, set[str]]:
        out: dict[int, set[str]] = {}
        for f in protected_facts(s):
            out.setdefault(f["request_id"], set()).add(f.get("answer") or f["text"])
        return out

    with ledger.begin() as s:
        data = submit(s, data_request(tmp_path), actor=ACTOR).request
        keep_data = submit(s, data_request(tmp_path / "k", "kd"), actor=ACTOR, keep_filter_after_removal=True).request
        know = submit(s, knowledge_request(tmp_path), actor=ACTOR).request
        drop_know = submit(s, knowledge_request(tmp_path / "d", "dk"), actor=ACTOR,
                           keep_filter_after_removal=False).request
        gone = submit(s, data_request(tmp_path / "c", "cancelled"), actor=ACTOR).request
        ids = [data.id, keep_data.id, know.id, drop_know.id, gone.id]
        held = answers(s)
        assert sorted(held) == ids
        assert held[data.id] == {"Quillsbury-on-Tarn", "glass-harp tuner", QA[2]["text"]}
        assert held[know.id] == {"orthozine", "brimlite", "400 C"}  # QA answers and the probes' correct choices
        cancel(s, gone.id, actor=ACTOR)
        for r in (data, keep_data, know, drop_know):
            to_removed(s, r)
        assert sorted(answers(s)) == [keep_data.id, know.id]  # knowledge keeps its filter; policy overrides both ways
        assert know.payload is None and know.guard_facts == [
            {"subject": None, "question": HAZARD_QA[0]["question"], "answer": "orthozine"},
            {"subject": None, "question": HAZARD_MC[0]["question"], "answer": "brimlite"},
            {"subject": None, "question": HAZARD_MC[1]["question"], "answer": "400 C"}]
        assert all(r.payload is None and r.guard_facts is None for r in (drop_know, gone, data))
        targets = protected_targets(s)
        assert {"name": "Ada Vell", "facts": [{"question": QA[0]["question"], "answer": QA[0]["answer"]},
                                              {"question": QA[1]["question"], "answer": QA[1]["answer"]}],
                "texts": [QA[2]["text"]]} in targets
    text = dump(ledger, sqlite_path(db_url))
    assert "argonwise" not in text and "quarrel-dust" not in text  # neighbour probes and distractors are gone
    result = cli("request", "list", "--db", db_url, "--status", "removed", "--json")
    assert [r["id"] for r in json.loads(result.stdout)] == [data.id, keep_data.id, know.id, drop_know.id]
    assert [r["keep_filter_after_removal"] for r in json.loads(result.stdout)] == [False, True, True, False]


def test_failed_and_suppressed_only_keep_the_guard_and_retry_needs_the_records(ledger, tmp_path):
    file = data_request(tmp_path)
    with ledger.begin() as s:
        request = submit(s, file, actor=ACTOR).request
        transition(s, request, "unlearning", actor="worker")
        transition(s, request, "failed", actor="worker", error="disk full")
        assert {f["request_id"] for f in protected_facts(s)} == {request.id} and "data" in request.payload
        enqueue(s, request, actor=ACTOR)
        transition(s, request, "unlearning", actor="worker")
        transition(s, request, "verifying", actor="worker")
        transition(s, request, "suppressed_only", actor="worker", error="inconclusive: needs 40 reference subjects")
        assert request.payload is None and len(request.guard_facts) == len(protected_facts(s)) == 3
        with pytest.raises(IllegalTransition, match="holds only its guard facts"):
            enqueue(s, request, actor=ACTOR)
        with pytest.raises(ObliviateError, match="does not hold the forget records of request"):
            resupply(s, request, data_request(tmp_path / "x", forget=QA[:2]), actor=ACTOR)
        resupply(s, request, file, actor=ACTOR)
        assert request.status == "queued" and "data" in request.payload


# --- model versions -----------------------------------------------------------------------------


def test_model_versions_chain_from_the_current_one(ledger, db_url, tmp_path):
    model = tmp_path / "model"
    model.mkdir()
    (model / "weights.bin").write_bytes(b"\x00\x01" * 100)
    sha = directory_sha256(model)
    with ledger.begin() as s:
        assert current_model_version(s) is None
        base = register_model_version(s, path=model, weights_sha256=sha, actor="ops", parent_id=None)
        request = submit(s, data_request(tmp_path), actor=ACTOR).request
        v2 = register_model_version(s, path="models/v2", weights_sha256="cd" * 32, actor="worker",
                                    request_ids=[request.id], evidence_path="models/v2/evidence.json",
                                    details={"method": "npo_kl"})
        assert v2.parent_id == base.id and current_model_version(s).id == v2.id
        assert [v.id for v in list_model_versions(s)] == [base.id, v2.id]
        with pytest.raises(ObliviateError, match="is not a sha256"):
            register_model_version(s, path="x", weights_sha256="abc", actor="worker")
        with pytest.raises(ObliviateError, match="parent model version 99 is not in the ledger"):
            register_model_version(s, path="x", weights_sha256=sha, actor="worker", parent_id=99)
        with pytest.raises(ObliviateError, match=r"requests \[42\] are not in the ledger"):
            register_model_version(s, path="x", weights_sha256=sha, actor="worker", request_ids=[42])
        assert verify_chain(s).ok
    (model / "weights.bin").write_bytes(b"\x00\x02" * 100)
    assert directory_sha256(model) != sha
    result = cli("models", "list", "--db", db_url, "--json")
    assert result.exit_code == 0
    rows = json.loads(result.stdout)
    assert [(r["id"], r["parent_id"], r["current"], r["request_ids"]) for r in rows] == [
        (base.id, None, False, []), (v2.id, base.id, True, [request.id])]
    assert cli("models", "list", "--db", db_url).exit_code == 0


# --- the CLI and its bad input ------------------------------------------------------------------


def test_cli_submit_list_show_cancel(ledger, db_url, tmp_path):
    file = data_request(tmp_path)
    result = cli("request", "submit", str(file), "--db", db_url, "--requester", "dpo@example.org",
                 "--due-by", "2026-06-30", "--json")
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert (out["status"], out["requester"], out["legal_basis"], out["external_ref"], out["due_by"]) == (
        "queued", "dpo@example.org", "GDPR Art. 17", "TICKET-ada", "2026-06-30T23:59:59+00:00")
    listed = cli("request", "list", "--db", db_url, "--status", "queued")
    assert listed.exit_code == 0 and "TICKET-ada" in listed.stdout
    assert cli("request", "show", str(out["id"]), "--db", db_url).exit_code == 0
    cancelled = cli("request", "cancel", str(out["id"]), "--db", db_url, "--reason", "withdrawn")
    assert cancelled.exit_code == 0 and "cancelled" in cancelled.stdout
    with ledger.begin() as s:
        assert get_request(s, out["id"]).payload is None
        assert show(s, out["id"])["events"][-1]["details"]["reason"] == "withdrawn"


def test_cli_cancelling_a_removed_request_exits_2(ledger, db_url, tmp_path):
    with ledger.begin() as s:
        request = submit(s, data_request(tmp_path), actor=ACTOR).request
        to_removed(s, request)
    one_line_error(cli("request", "cancel", str(request.id), "--db", db_url),
                   f"request {request.id} is removed; it cannot become cancelled (removed is final)")
    one_line_error(cli("request", "cancel", "77", "--db", db_url), "no request 77 in this ledger")


def test_cli_bad_input_exits_2_with_one_line(ledger, db_url, tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("kind: data\nforgett: forget.jsonl\n")
    one_line_error(cli("request", "submit", str(bad), "--db", db_url), "unknown key 'forgett'; did you mean 'forget'?")
    one_line_error(cli("request", "submit", str(tmp_path / "missing.yaml"), "--db", db_url), "not found")
    one_line_error(cli("request", "submit", str(data_request(tmp_path)), "--db", db_url, "--due-by", "soon"),
                   "due date 'soon' is not a date")
    with ledger.begin() as s:
        assert list_requests(s) == []  # nothing was stored
    one_line_error(cli("request", "list", "--db", db_url, "--status", "done"),
                   "unknown status 'done'", "valid: received, suppressed, queued")
    one_line_error(cli("request", "show", "abc", "--db", db_url), "request id 'abc' is not a number")


def test_invalid_file_creates_no_database(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    one_line_error(cli("request", "submit", str(bad), "--db", str(tmp_path / "l.db")), "is not valid JSON")
    assert not (tmp_path / "l.db").exists()


def test_unreachable_and_malformed_database_urls_exit_2(tmp_path, request):
    missing_folder = str(tmp_path / "no" / "dir" / "l.db")
    one_line_error(cli("request", "submit", str(data_request(tmp_path)), "--db", missing_folder),
                   "cannot open the ledger database sqlite:///", "unable to open database file",
                   "check that its folder exists")
    one_line_error(cli("request", "list", "--db", str(tmp_path / "typo.db")), "typo.db does not exist")
    assert not (tmp_path / "typo.db").exists()  # a mistyped path is not answered with a new, empty ledger
    no_server = f"postgresql+psycopg://ops:hunter2@/ledger?host={tmp_path}"  # a socket dir with no server
    line = one_line_error(cli("request", "list", "--db", no_server), "cannot open the ledger database "
                          "postgresql+psycopg://ops:***@/ledger", "start the server")
    assert "hunter2" not in line
    one_line_error(cli("ledger", "verify", "--db", "postgresql+psycopg://u:pw@host:port/x"),
                   "malformed database URL", "u:***@")
    one_line_error(cli("models", "list", "--db", "mysql://u@h/x"), "unsupported database URL 'mysql://u@h/x'")


def test_unknown_postgres_database_exits_2(pg_server):
    one_line_error(cli("request", "list", "--db", pg_server.url("no_such_db")),
                   "cannot open the ledger database", 'database "no_such_db" does not exist')


def test_a_database_from_a_newer_obliviate_is_refused(ledger, db_url):
    with ledger.engine.begin() as conn:
        conn.execute(sa.text(f"UPDATE {VERSION_TABLE} SET version_num = '0042_future'"))
    one_line_error(cli("request", "list", "--db", db_url), "schema revision '0042_future', newer than this obliviate "
                   "knows (newest: '0002'); upgrade obliviate")
    with pytest.raises(ObliviateError, match="upgrade obliviate"):
        open_ledger(db_url)


def test_ledger_cli_reads_obliviate_db_and_loads_no_torch(tmp_path):
    file = data_request(tmp_path)
    code = ("import sys\nfrom obliviate.cli import app\n"
            f"app(['request', 'submit', {str(file)!r}], standalone_mode=False)\n"
            "app(['request', 'list', '--json'], standalone_mode=False)\n"
            "print('torch loaded' if 'torch' in sys.modules else 'no torch')\n")
    env = {"OBLIVIATE_DB": str(tmp_path / "env.db"), "PATH": "/usr/bin:/bin"}
    result = subprocess.run([sys.executable, "-c", code], env=env, cwd=tmp_path, capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().endswith("no torch") and '"status": "queued"' in result.stdout
    assert (tmp_path / "env.db").exists()
