"""`obliviate serve` as users reach it: a real uvicorn process on 127.0.0.1, the official `openai`
client for chat, httpx for the admin API, and the ledger behind both."""

from __future__ import annotations

import asyncio
import json
import signal
import threading
import time
from pathlib import Path

import httpx
import openai
import pytest
import torch

from obliviate.config import load_config
from obliviate.pipeline import models_dir, stage_data, stage_models
from obliviate.serve.holdback import REFUSAL, audited
from obliviate.serve.process import ServerProcess

TOKEN = "test-admin-token-4d1f"
ADMIN = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture(scope="module")
def micro(tmp_path_factory):
    """micro's benchmark and its trained target (the run cache shared with the other micro tests)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    cfg = load_config("micro", [f"output_dir={tmp_path_factory.getbasetemp() / 'micro-full'}"])
    bench = stage_data(cfg)
    stage_models(cfg, bench)
    yield bench, models_dir(cfg) / "target"
    torch.set_num_threads(threads)


class Server(ServerProcess):
    """One `obliviate serve` subprocess (1 torch thread, the test token); its JSON log is in `log`."""

    def __init__(self, tmp: Path, *args: str, name: str = "server"):
        super().__init__(["--threads", "1", *args], tmp / f"{name}.log", env={"OBLIVIATE_ADMIN_TOKEN": TOKEN},
                         ready_s=120)
        self.client = openai.OpenAI(base_url=f"{self.url}/v1", api_key="unused", max_retries=0)

    def ask(self, question: str, model: str = "target", **kw) -> str:
        out = self.client.chat.completions.create(model=model, messages=[{"role": "user", "content": question}],
                                                  temperature=0, max_tokens=12, **kw)
        return out.choices[0].message.content

    def stream(self, question: str, model: str = "target") -> tuple[str, str | None]:
        chunks = list(self.client.chat.completions.create(
            model=model, messages=[{"role": "user", "content": question}], temperature=0, max_tokens=12, stream=True))
        return "".join(c.choices[0].delta.content or "" for c in chunks), chunks[-1].choices[0].finish_reason


def records(bench, split: str, person: str) -> list[dict]:
    """The person's QA records with every phrasing trained on (exact deletion deletes exactly those)."""
    return [{"subject": r["person"], "question": r["question"], "answer": r["answer"], "phrasings": r["phrasings"]}
            for r in bench.split(split) if r["person"] == person]


def request_body(bench, person: str) -> dict:
    """A data request for everything the model was trained on about `person`: QA records and biography."""
    reference = [r for p in bench.people("holdout")[:8] for r in records(bench, "holdout", p)]
    bios = [{"subject": b["person"], "text": b["text"]} for b in bench.bios_of("forget") if b["person"] == person]
    return {"request": {"kind": "data", "id": f"ticket-{person.split()[-1]}",
                        "forget": records(bench, "forget", person) + bios, "reference": reference},
            "legal_basis": "GDPR Art. 17"}


def known_person(server: Server, bench) -> tuple[str, list[dict]]:
    """A forget person whose facts the served target states (most of its canonical questions)."""
    for person in bench.people("forget"):
        facts = records(bench, "forget", person)
        said = [f for f in facts if f["answer"].lower() in server.ask(f["question"]).lower()]
        if len(said) >= len(facts) // 2:
            return person, said
    raise AssertionError("the micro target states no forget person's facts")


def stated(text: str, facts: list[dict]) -> list[str]:
    return [f["answer"] for f in facts if f["answer"].lower() in text.lower()]


@pytest.fixture
def local(micro, tmp_path):
    bench, target = micro
    server = Server(tmp_path, "--model", str(target), "--db", f"sqlite:///{tmp_path / 'ledger.db'}")
    yield server, bench
    server.stop()


# --- the product path --------------------------------------------------------------------------


def test_a_submitted_request_is_suppressed_within_a_second_and_retain_answers_stay(local):
    server, bench = local
    assert [m.id for m in server.client.models.list().data] == ["target"]
    person, facts = known_person(server, bench)
    text, finish = server.stream(facts[0]["question"])
    assert stated(text, facts[:1]) and finish == "stop"  # streaming says it too, before the request
    retain_person = bench.people("retain")[0]
    retain = records(bench, "retain", retain_person)
    retain_before = [server.ask(r["question"]) for r in retain]

    start = time.perf_counter()
    response = httpx.post(f"{server.url}/admin/requests", json=request_body(bench, person), headers=ADMIN, timeout=30)
    assert response.status_code == 201 and response.json()["status"] == "queued"
    while stated(server.ask(facts[0]["question"]), facts):
        assert time.perf_counter() - start < 1.0, "still stated 1 s after the submission"
    assert time.perf_counter() - start < 1.0  # measured: submission + the first clean answer

    for f in facts:
        for text in (server.ask(f["question"]), server.stream(f["question"])[0]):
            assert not stated(text, facts), (f["question"], text)
    assert [server.ask(r["question"]) for r in retain] == retain_before  # nothing of it is guarded

    # the same request with the same idempotency key is created once
    again = [httpx.post(f"{server.url}/admin/requests", json=request_body(bench, person),
                        headers=ADMIN | {"Idempotency-Key": "k-1"}, timeout=30) for _ in range(2)]
    assert [r.status_code for r in again] == [201, 200] and again[0].json()["id"] == again[1].json()["id"]
    listed = httpx.get(f"{server.url}/admin/requests", headers=ADMIN).json()
    assert [r["status"] for r in listed] == ["queued", "queued"]
    shown = httpx.get(f"{server.url}/admin/requests/{listed[0]['id']}", headers=ADMIN).json()
    assert shown["legal_basis"] == "GDPR Art. 17" and [e["type"] for e in shown["events"]][:2] == ["received",
                                                                                                 "suppressed"]
    assert facts[0]["answer"] not in json.dumps(shown)
    cancelled = httpx.post(f"{server.url}/admin/requests/{listed[1]['id']}/cancel", json={"reason": "duplicate"},
                           headers=ADMIN)
    assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled"
    illegal = httpx.post(f"{server.url}/admin/requests/{listed[1]['id']}/cancel", headers=ADMIN)
    assert illegal.status_code == 409 and "cancelled" in illegal.json()["error"]["message"]
    assert httpx.get(f"{server.url}/admin/ledger/verify", headers=ADMIN).json()["ok"] is True
    assert httpx.get(f"{server.url}/admin/models", headers=ADMIN).json() == []

    metrics = httpx.get(f"{server.url}/metrics").text
    assert 'obliviate_ledger_requests{status="queued"} 1.0' in metrics
    assert 'obliviate_ledger_requests{status="cancelled"} 1.0' in metrics
    assert 'obliviate_http_requests_total{route="/v1/chat/completions",status="200"}' in metrics
    log = [json.loads(line) for line in server.log.read_text().splitlines() if line.startswith("{")]
    assert log and all(line["request_id"] for line in log if line["msg"] == "request")
    text = server.log.read_text()
    assert TOKEN not in text and facts[0]["answer"] not in text  # neither the token nor a fact is logged


def test_bad_input_over_http_gets_clear_errors_and_the_server_stays_up(local):
    server, _ = local
    url = f"{server.url}/v1/chat/completions"
    ok = {"model": "target", "messages": [{"role": "user", "content": "Where was Ada Vell born?"}]}

    def post(body=None, content=None, headers=None):
        return httpx.post(url, json=body, content=content, headers=headers, timeout=30)

    cases = {
        "1 MB prompt": (post({**ok, "messages": [{"role": "user", "content": "x" * 1_000_000}]}), 413, "limit"),
        "invalid UTF-8": (post(content=b'{"model": "target", "messages": [{"role": "user", "content": "\xff\xfe"}]}',
                               headers={"content-type": "application/json"}), 400, "UTF-8"),
        "max_tokens 0": (post({**ok, "max_tokens": 0}), 422, "max_tokens"),
        "max_tokens -5": (post({**ok, "max_tokens": -5}), 422, "max_tokens"),
        "unknown model": (post({**ok, "model": "gpt-9"}), 404, "available: target"),
        "malformed JSON": (post(content=b'{"model": "target", "messages": [', headers={"content-type":
                                                                                      "application/json"}), 400, "JSON"),
        "no content": (post({**ok, "messages": [{"role": "user"}]}), 422, "content"),
        "empty content": (post({**ok, "messages": [{"role": "user", "content": "  "}]}), 422, "empty"),
        "no messages": (post({**ok, "messages": []}), 422, "messages"),
        "admin, no token": (httpx.get(f"{server.url}/admin/requests"), 401, "missing admin token"),
        "admin, wrong token": (httpx.get(f"{server.url}/admin/requests", headers={"Authorization": "Bearer x"}), 403,
                               "wrong admin token"),
        "admin, bad record": (httpx.post(f"{server.url}/admin/requests", headers=ADMIN, json={"request": {
            "kind": "data", "forget": [{"question": "q"}], "reference": []}}), 422, "forget.jsonl, line 1"),
        "admin, unknown status": (httpx.get(f"{server.url}/admin/requests?status=gone", headers=ADMIN), 422, "gone"),
        "admin, no such request": (httpx.get(f"{server.url}/admin/requests/999", headers=ADMIN), 404, "no request 999"),
    }
    for name, (response, status, words) in cases.items():
        assert response.status_code == status, (name, response.status_code, response.text[:300])
        error = response.json()["error"]
        assert words in error["message"] and error["type"], (name, error)
    with pytest.raises(openai.NotFoundError, match="available: target"):
        server.ask("hello", model="nope")
    assert httpx.get(f"{server.url}/healthz").json() == {"status": "ok"}
    assert server.ask("Where was Ada Vell born?")  # still answering


def test_concurrent_requests_are_batched_and_sigterm_lets_them_finish(local):
    server, bench = local
    questions = [r["question"] for r in bench.retain[:24]]
    alone = [server.ask(q) for q in questions[:4]]

    async def burst():
        client = openai.AsyncOpenAI(base_url=f"{server.url}/v1", api_key="unused", max_retries=0)
        outs = await asyncio.gather(*(client.chat.completions.create(
            model="target", messages=[{"role": "user", "content": q}], temperature=0, max_tokens=12)
            for q in questions))
        return [o.choices[0].message.content for o in outs]

    together = asyncio.run(burst())
    assert together[:4] == alone  # batching (left padding) does not change a greedy answer

    results = []
    thread = threading.Thread(target=lambda: results.append(asyncio.run(burst())))
    thread.start()
    time.sleep(0.3)  # the burst is in flight
    # uvicorn finishes the in-flight requests, then re-raises SIGTERM so the exit status says why it ended
    assert server.stop() in (0, -signal.SIGTERM)
    thread.join(timeout=60)
    assert results and len(results[0]) == len(questions)  # every in-flight request was answered


def test_the_upstream_proxy_never_streams_a_protected_fact_the_upstream_emits(micro, tmp_path):
    bench, target = micro
    upstream = Server(tmp_path, "--model", str(target), "--no-protect", "--db", f"sqlite:///{tmp_path / 'up.db'}",
                      name="upstream")
    proxy = Server(tmp_path, "--upstream", f"{upstream.url}/v1", "--db", f"sqlite:///{tmp_path / 'proxy.db'}",
                   name="proxy")
    try:
        assert [m.id for m in proxy.client.models.list().data] == ["target"]
        person, facts = known_person(proxy, bench)
        response = httpx.post(f"{proxy.url}/admin/requests", json=request_body(bench, person), headers=ADMIN,
                              timeout=30)
        assert response.status_code == 201
        for f in facts:
            assert stated(upstream.ask(f["question"]), [f])  # the upstream still says it
            text, finish = proxy.stream(f["question"])
            assert not stated(text, facts) and finish == "content_filter" and REFUSAL in text
            assert not stated(proxy.ask(f["question"]), facts)
        retain = records(bench, "retain", bench.people("retain")[0])
        assert [proxy.ask(r["question"]) for r in retain] == [upstream.ask(r["question"]) for r in retain]
    finally:
        proxy.stop()
        upstream.stop()


# --- the parts ------------------------------------------------------------------------------------


def test_holdback_releases_nothing_of_a_value_that_completes_within_k_pieces():
    async def run(pieces: list[str], k: int):
        async def gen():
            for p in pieces:
                yield p

        return [x async for x in audited(gen(), lambda text: ["Tallinn"] if "Tallinn" in text else [], k)]

    leaky = ["She", " was", " born", " in", " Tal", "linn", " in", " 1951"]
    out = asyncio.run(run(leaky, k=2))
    released = "".join(t for t, f in out if f is None)
    assert released == "She was born" and out[-1] == (" " + REFUSAL, "content_filter")
    assert "Tal" not in released  # the value's first piece was still held when it completed
    clean = ["She", " was", " born", " in", " Oslo"]
    assert "".join(t for t, _ in asyncio.run(run(clean, k=2))) == "She was born in Oslo"
    assert asyncio.run(run(["Tallinn"], k=4)) == [(REFUSAL, "content_filter")]


@pytest.fixture(scope="module")
def sisa_store(micro, tmp_path_factory):
    """A SISA store of micro's people (2 shards, 20 epochs: about 45 s on one thread); it knows their facts."""
    from transformers import AutoConfig, AutoTokenizer

    from obliviate.methods.exact import ExactConfig
    from obliviate.methods.exact.sisa import SISAStore

    bench, target = micro
    path = tmp_path_factory.mktemp("sisa") / "store"
    SISAStore.create(path, AutoTokenizer.from_pretrained(target), AutoConfig.from_pretrained(target), bench,
                     ExactConfig(shards=2, slices=1, epochs=20, base_epochs=10), seed=0)
    return path


def test_after_the_worker_the_served_version_changes_and_the_fact_stays_absent(micro, sisa_store, tmp_path):
    """The exact path: the worker deletes through the store, so the request ends `removed` and the
    served version changes. (A weight-space job on micro ends `suppressed_only`: gradient difference
    over-forgets one person, and the membership AUC of 0.21 against 0.5 shows it; test_worker covers it.)"""
    from obliviate.ledger import directory_sha256, open_ledger, register_model_version
    from obliviate.ledger.worker import run_worker

    bench, _ = micro
    db = f"sqlite:///{tmp_path / 'ledger.db'}"
    with open_ledger(db) as ledger, ledger.begin() as s:
        register_model_version(s, path=sisa_store, weights_sha256=directory_sha256(sisa_store), actor="test",
                               parent_id=None)
    server = Server(tmp_path, "--db", db, "--model-name", "target")  # serves the ledger's current version
    try:
        assert httpx.get(f"{server.url}/readyz").json()["model_version"] == 1
        person, facts = known_person(server, bench)
        assert httpx.post(f"{server.url}/admin/requests", json=request_body(bench, person), headers=ADMIN,
                          timeout=30).status_code == 201
        assert httpx.get(f"{server.url}/readyz").json()["protected_targets"] == 1
        with open_ledger(db) as ledger:
            summary = run_worker(ledger, once=True, batch_window_s=0, method="gradient_difference",
                                 cfg=load_config("micro", ["threads=1"]), versions_dir=tmp_path / "versions")
        assert summary["removed"] == [1] and summary["versions"] == [2], summary
        deadline = time.monotonic() + 30
        while httpx.get(f"{server.url}/readyz").json()["model_version"] != 2:
            assert time.monotonic() < deadline, "the new version was not loaded in 30 s"
            time.sleep(0.2)
        assert httpx.get(f"{server.url}/readyz").json()["protected_targets"] == 0  # removed: guard lifted
        # and the retrained shard no longer says it, beyond what a model guesses of people it never saw
        said = [f for f in facts if stated(server.ask(f["question"]), [f])]
        holdout = [r for p in bench.people("holdout")[:8] for r in records(bench, "holdout", p)]
        guessed = [r for r in holdout if stated(server.ask(r["question"]), [r])]
        assert len(said) / len(facts) <= max(0.1, 2 * len(guessed) / len(holdout)), (said, len(guessed))
        assert "obliviate_served_model_version 2.0" in httpx.get(f"{server.url}/metrics").text
    finally:
        server.stop()


def test_a_guarded_row_ends_at_its_line_break_and_the_others_run_on():
    import torch

    from obliviate.serve.engine import GuardedLineEnd, cut_at_stop

    stop = GuardedLineEnd([True, False], frozenset({7}))
    assert stop(torch.tensor([[1, 7], [1, 7]]), None).tolist() == [True, False]
    assert stop(torch.tensor([[1, 3], [1, 3]]), None).tolist() == [False, False]
    assert cut_at_stop("97\n\nIn the year", ("\n",)) == ("97", True)
    assert cut_at_stop("Oslo", ("\n", "END")) == ("Oslo", False)
