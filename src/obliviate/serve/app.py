"""The FastAPI application of `obliviate serve`: OpenAI routes, admin API, health, metrics, logs.

    app = create_app(Settings(model="runs/tiny/.../target", db="sqlite:///ledger.db"))
    uvicorn.run(app, host="127.0.0.1", port=8000)

Every answer passes the ledger's protection (`shield.py`): the prompt classifier first (a flagged
prompt is generated through the guard, local mode), then the output audit on every response. A
blocked answer is replaced by a refusal with finish_reason "content_filter"; no message, log line or
error ever carries the protected value. A poll thread re-reads the ledger every `reload_s` (one
query while nothing changed) and, in local mode, loads a new model version when one is registered.
"""

from __future__ import annotations

import asyncio
import json
import logging
import queue
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response, StreamingResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy import text

from obliviate.data import format_prompt
from obliviate.serve import wire
from obliviate.serve.admin import ApiError
from obliviate.serve.holdback import REFUSAL, audited

log = logging.getLogger("obliviate.serve")


@dataclass
class Settings:
    model: str | None = None  # local mode: served until the ledger registers a model version
    upstream: str | None = None  # upstream mode: base URL of an OpenAI-compatible server (.../v1)
    upstream_api_key: str | None = None
    db: str | None = None  # ledger URL (default $OBLIVIATE_DB, else ./obliviate-ledger.db)
    guard: str = "guard"  # guard | eco | alu: how a flagged prompt is answered (local mode)
    guard_config: dict = field(default_factory=dict)  # the guard's config fields, e.g. {"penalty": 30}
    protect: bool = True  # False: no classifier, no audit (a baseline for benchmarks only)
    audit: bool = True  # False: the guard alone, no output audit (to measure what the audit adds)
    admin_token: str | None = None
    model_name: str | None = None  # the id clients send as "model"; default: the model's folder name
    max_body_bytes: int = 256 * 1024
    max_tokens_limit: int = 512
    default_max_tokens: int = 64
    holdback_tokens: int = 16
    reload_s: float = 0.1
    batch_window_s: float = 0.005
    max_batch: int = 32


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        out = {"ts": round(record.created, 3), "level": record.levelname.lower(), "msg": record.getMessage()}
        out.update(getattr(record, "fields", {}))
        return json.dumps(out)


@dataclass
class ServerState:
    settings: Settings
    ledger: object
    shield: object | None
    engine: object | None = None
    upstream: object | None = None
    model_names: list[str] = field(default_factory=list)  # what clients may send as "model"
    version_id: int | None = None
    metrics: object = None
    actor: str = "server"
    admin_token: str | None = None
    ready: bool = False
    stop: threading.Event = field(default_factory=threading.Event)

    def refresh_protection(self) -> None:
        if self.shield is not None:
            self.shield.refresh()
            self.metrics.targets.set(self.shield.snapshot.targets)


def _load_model(spec: str):
    """A model version as the worker registers it: a Hugging Face directory, a .gguf, or an exact store."""
    from obliviate.methods.exact.store import is_exact_dir, load_exact
    from obliviate.models.load import load_language_model

    return load_exact(spec) if is_exact_dir(spec) else load_language_model(spec)


def _current_version(ledger):
    from obliviate.ledger import current_model_version

    with ledger.begin() as session:
        v = current_model_version(session)
        return (v.id, v.path) if v is not None else (None, None)


def _poll(state: ServerState) -> None:
    """Keep the protection and (local mode) the served model version current until `state.stop`."""
    while not state.stop.wait(state.settings.reload_s):
        try:
            state.refresh_protection()
            if state.engine is not None:
                vid, path = _current_version(state.ledger)
                if vid is not None and vid != state.version_id:
                    state.engine.swap(_load_model(path))
                    state.version_id = vid
                    state.metrics.version.set(vid)
                    log.info("model version loaded", extra={"fields": {"model_version": vid}})
        except Exception as err:  # noqa: BLE001 - a failed poll is retried; serving goes on
            log.warning("ledger poll failed", extra={"fields": {"error": type(err).__name__}})


def upstream_models(url: str, api_key: str | None) -> list[str]:
    """The model ids the upstream serves (GET /models), read once at start."""
    import httpx

    from obliviate.errors import ObliviateError

    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    try:
        response = httpx.get(f"{url.rstrip('/')}/models", headers=headers, timeout=10)
        response.raise_for_status()
        return [m["id"] for m in response.json()["data"]]
    except (httpx.HTTPError, ValueError, KeyError, TypeError) as err:
        raise ObliviateError(f"cannot list the models of upstream {url} ({type(err).__name__}); give the base "
                             "URL of an OpenAI-compatible server, e.g. http://127.0.0.1:8001/v1") from None


def build_state(settings: Settings) -> ServerState:
    from obliviate.errors import ObliviateError
    from obliviate.ledger import open_ledger
    from obliviate.serve.metrics import Metrics

    if settings.model is not None and settings.upstream is not None:
        raise ObliviateError("give either --model (local mode) or --upstream URL (upstream mode), not both")
    ledger = open_ledger(settings.db)
    shield = None
    if settings.protect:
        from obliviate.serve.shield import Shield

        shield = Shield(ledger)
    state = ServerState(settings, ledger, shield, metrics=Metrics(), admin_token=settings.admin_token)
    if settings.upstream is not None:
        from obliviate.serve.upstream import Upstream

        state.upstream = Upstream(settings.upstream, settings.upstream_api_key)
        state.model_names = upstream_models(settings.upstream, settings.upstream_api_key)
    else:
        from obliviate.serve.engine import Engine

        vid, path = _current_version(ledger)
        spec = path or settings.model
        if spec is None:
            raise ObliviateError("no model to serve: the ledger has no model version; pass --model SPEC (a "
                                 "packaged name, Hugging Face directory or .gguf file) or --upstream URL")
        lm = _load_model(spec)
        state.engine = Engine(lm, settings.guard, settings.batch_window_s, settings.max_batch,
                              guard_config=settings.guard_config, shield=shield)
        state.version_id = vid
        state.model_names = [settings.model_name or Path(str(settings.model or path)).name]
        state.metrics.version.set(vid or 0)
    state.refresh_protection()
    return state


def create_app(settings: Settings, state: ServerState | None = None) -> FastAPI:
    state = state or build_state(settings)
    poller = threading.Thread(target=_poll, args=(state,), name="obliviate-poll", daemon=True)

    async def lifespan(app):
        poller.start()
        state.ready = True
        yield
        state.ready = False
        state.stop.set()
        poller.join(timeout=5)
        if state.engine is not None:
            state.engine.close()
        if state.upstream is not None:
            await state.upstream.close()
        state.ledger.close()

    app = FastAPI(title="obliviate", lifespan=lifespan, docs_url=None, redoc_url=None)
    app.state.obliviate = state
    _errors(app)
    _middleware(app, state)
    _operations(app, state)
    _openai_routes(app, state)
    from obliviate.serve.admin import router

    app.include_router(router(state))
    return app


# --- errors, limits, logs, metrics ----------------------------------------------------------------


def _error(status: int, message: str, type_: str = "invalid_request_error", code: str | None = None,
           param: str | None = None) -> JSONResponse:
    return JSONResponse(wire.error_body(message, type_, code, param), status_code=status)


def _errors(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def api_error(request: Request, err: ApiError):
        return _error(err.status, err.message, err.type, err.code)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, err: RequestValidationError):
        first = err.errors()[0]
        if first.get("type") == "json_invalid":
            return _error(400, f"the request body is not valid JSON: {first.get('ctx', {}).get('error', '')}".strip(),
                          code="invalid_json")
        where = ".".join(str(p) for p in first.get("loc", ()) if p != "body")
        return _error(422, f"{where or 'body'}: {first.get('msg')}", code="invalid_value", param=where or None)

    @app.exception_handler(Exception)
    async def crashed(request: Request, err: Exception):
        log.error("unhandled error", extra={"fields": {"request_id": request.state.request_id,
                                                        "error": type(err).__name__}})
        return _error(500, "internal error; the server log has the request id", "server_error")


def _route_of(request: Request) -> str:
    route = request.scope.get("route")
    return getattr(route, "path", "unmatched")


def _middleware(app: FastAPI, state: ServerState) -> None:
    @app.middleware("http")
    async def frame(request: Request, call_next):
        request.state.request_id = request.headers.get("x-request-id") or uuid.uuid4().hex
        start = time.perf_counter()
        size = request.headers.get("content-length")
        if size is not None and size.isdigit() and int(size) > state.settings.max_body_bytes:
            response = _error(413, f"request body of {size} bytes is over this server's limit of "
                              f"{state.settings.max_body_bytes}; send a shorter prompt", code="body_too_large")
        else:
            body = await request.body()
            if len(body) > state.settings.max_body_bytes:
                response = _error(413, f"request body of {len(body)} bytes is over this server's limit of "
                                  f"{state.settings.max_body_bytes}; send a shorter prompt", code="body_too_large")
            elif body and request.method == "POST" and not _utf8(body):
                response = _error(400, "the request body is not valid UTF-8; send JSON encoded as UTF-8",
                                  code="invalid_encoding")
            else:
                response = await call_next(request)
        seconds = time.perf_counter() - start
        route = _route_of(request)
        state.metrics.requests.labels(route, str(response.status_code)).inc()
        state.metrics.latency.labels(route).observe(seconds)
        response.headers["x-request-id"] = request.state.request_id
        log.info("request", extra={"fields": {"request_id": request.state.request_id, "method": request.method,
                                              "path": request.url.path, "status": response.status_code,
                                              "ms": round(seconds * 1000, 1)}})
        return response


def _utf8(body: bytes) -> bool:
    try:
        body.decode("utf-8")
        return True
    except UnicodeDecodeError:
        return False


def _operations(app: FastAPI, state: ServerState) -> None:
    @app.get("/healthz")
    def healthz():
        return {"status": "ok"}

    @app.get("/readyz")
    def readyz():
        try:
            with state.ledger.begin() as session:
                session.execute(text("SELECT 1"))
        except Exception:  # noqa: BLE001 - not ready while the ledger is unreachable
            return JSONResponse({"status": "ledger unreachable"}, status_code=503)
        if not state.ready:
            return JSONResponse({"status": "starting"}, status_code=503)
        return {"status": "ready", "models": state.model_names, "model_version": state.version_id,
                "protected_targets": state.shield.snapshot.targets if state.shield else None}

    @app.get("/metrics")
    def metrics():
        state.metrics.read_ledger(state.ledger)
        return Response(generate_latest(state.metrics.registry), media_type=CONTENT_TYPE_LATEST)


# --- the OpenAI routes --------------------------------------------------------------------------


def _openai_routes(app: FastAPI, state: ServerState) -> None:
    @app.get("/v1/models")
    def models():
        return {"object": "list", "data": [{"id": name, "object": "model", "created": 0, "owned_by": "obliviate"}
                                           for name in state.model_names]}

    @app.post("/v1/chat/completions")
    async def chat(body: wire.ChatRequest):
        messages = [{"role": m.role, "content": m.content} for m in body.messages]
        users = [m["content"] for m in messages if m["role"] == "user"] or [messages[-1]["content"]]
        return await _answer(state, body, messages, format_prompt("\n".join(users)), chat=True)

    @app.post("/v1/completions")
    async def completions(body: wire.CompletionRequest):
        return await _answer(state, body, [{"role": "user", "content": body.prompt}], format_prompt(body.prompt),
                             chat=False)


def _check(state: ServerState, body: wire.Sampling) -> int:
    if body.model not in state.model_names:
        raise ApiError(404, f"model {body.model!r} does not exist here; available: {', '.join(state.model_names)}",
                       code="model_not_found")
    max_tokens = body.max_tokens or state.settings.default_max_tokens
    if max_tokens > state.settings.max_tokens_limit:
        raise ApiError(422, f"max_tokens {max_tokens} is over this server's limit of "
                       f"{state.settings.max_tokens_limit}", code="invalid_value")
    return max_tokens


async def _answer(state: ServerState, body: wire.Sampling, messages: list[dict], classify_text: str, chat: bool):
    max_tokens = _check(state, body)
    shield = state.shield
    snapshot = shield.snapshot if shield else None
    cid = wire.completion_id("chatcmpl" if chat else "cmpl")

    def auditor(decision):
        if decision is not None and decision.fired:
            state.metrics.flags.inc()
        if shield is None or not state.settings.audit:
            return lambda text: []
        return lambda text: shield.leaks(classify_text, text, decision, snapshot)

    if state.upstream is not None:
        decision = (await asyncio.to_thread(shield.classify, [classify_text], snapshot))[0] if shield else None
        return await _upstream_answer(state, body, cid, chat, auditor(decision))
    from obliviate.serve.engine import Job, Params, render_prompt

    engine = state.engine
    ids, guard_prompt = render_prompt(engine.tokenizer, messages) if chat else _plain_ids(engine, body.prompt)
    limit = getattr(engine.lm.model.config, "max_position_embeddings", None)
    if limit is not None and len(ids) + max_tokens > limit:
        raise ApiError(400, f"the prompt is {len(ids)} tokens and max_tokens {max_tokens}; this model takes "
                       f"{limit} in all; shorten the prompt or lower max_tokens", code="context_length_exceeded")
    params = Params(max_tokens, body.temperature, body.top_p, tuple(body.stop or ()) or engine.default_stop())
    # the engine classifies the prompt with the rest of its batch (one embedding call per batch)
    job = Job(ids, guard_prompt, params, classify_text if shield else None, snapshot)
    if not body.stream:
        text, finish = await asyncio.wrap_future(engine.submit(job).future)
        if auditor(job.decision)(text):
            state.metrics.blocks.inc()
            text, finish = REFUSAL, "content_filter"
        n = len(engine.tokenizer.encode(text, add_special_tokens=False))
        make = wire.chat_response if chat else wire.text_response
        return make(cid, body.model, text, finish, len(ids), n)
    loop, pieces = asyncio.get_running_loop(), asyncio.Queue()
    job.stream = _LoopQueue(loop, pieces)
    engine.submit(job)
    finish = {"reason": "stop"}

    async def from_engine():
        while (piece := await pieces.get()) is not None:
            yield piece
        try:
            finish["reason"] = (await asyncio.wrap_future(job.future))[1]
        except Exception as err:  # noqa: BLE001 - the generation failed mid-stream
            raise ApiError(500, f"generation failed ({type(err).__name__})", "server_error") from None

    leaks = None

    def lazy(text: str) -> list[str]:  # the decision exists once the engine has classified the batch
        nonlocal leaks
        if leaks is None:
            job.classified.wait()
            leaks = auditor(job.decision)
        return leaks(text)

    return _sse(state, cid, body.model, chat, from_engine(), lazy, lambda: finish["reason"])


def _plain_ids(engine, prompt: str) -> tuple[list[int], str]:
    """/v1/completions: the prompt as raw text after bos, no template (as OpenAI's legacy endpoint)."""
    tok = engine.tokenizer
    return [tok.bos_token_id, *tok.encode(prompt, add_special_tokens=False)], prompt


class _LoopQueue:
    """The engine thread's end of an asyncio queue."""

    def __init__(self, loop, q: asyncio.Queue):
        self.loop, self.q = loop, q

    def put(self, item) -> None:
        self.loop.call_soon_threadsafe(self.q.put_nowait, item)


def _sse(state: ServerState, cid: str, model: str, chat: bool, pieces, leaks, finish_of) -> StreamingResponse:
    k = state.settings.holdback_tokens

    def chunk(text: str | None, finish: str | None, first: bool = False) -> str:
        if chat:
            delta = ({"role": "assistant", "content": ""} if first else {}) | ({"content": text} if text else {})
            body = wire.chat_chunk(cid, model, delta, finish)
        else:
            body = wire.text_chunk(cid, model, text or "", finish)
        return f"data: {json.dumps(body)}\n\n"

    async def events():
        if chat:
            yield chunk(None, None, first=True)
        blocked = False
        try:
            async for text, finish in audited(pieces, leaks, k, on_block=state.metrics.blocks.inc):
                blocked = finish == "content_filter"
                yield chunk(text, finish)
            if not blocked:
                yield chunk(None, finish_of())
        except ApiError as err:  # an upstream failure mid-stream: end with an error event
            yield f"data: {json.dumps(wire.error_body(err.message, err.type, err.code))}\n\n"
        yield "data: [DONE]\n\n"

    return StreamingResponse(events(), media_type="text/event-stream", headers={"Cache-Control": "no-cache"})


async def _upstream_answer(state: ServerState, body: wire.Sampling, cid: str, chat: bool, leaks):
    from obliviate.serve.upstream import UpstreamError

    path = "/chat/completions" if chat else "/completions"
    payload = body.model_dump(exclude_none=True)
    if not body.stream:
        try:
            out = await state.upstream.post(path, payload)
        except UpstreamError as err:
            return JSONResponse(err.body, status_code=err.status)
        choice = out["choices"][0]
        text = choice["message"]["content"] if chat else choice["text"]
        if leaks(text or ""):
            state.metrics.blocks.inc()
            text = REFUSAL
            choice["finish_reason"] = "content_filter"
        if chat:
            choice["message"]["content"] = text
        else:
            choice["text"] = text
        return out

    finish = {"reason": "stop"}

    async def from_upstream():
        try:
            async for c in state.upstream.stream(path, payload):
                ch = (c.get("choices") or [{}])[0]
                if ch.get("finish_reason"):
                    finish["reason"] = ch["finish_reason"]
                piece = (ch.get("delta") or {}).get("content") if chat else ch.get("text")
                if piece:
                    yield piece
        except UpstreamError as err:
            raise ApiError(err.status, str(err), "upstream_error") from None

    return _sse(state, cid, body.model, chat, from_upstream(), leaks, lambda: finish["reason"])

