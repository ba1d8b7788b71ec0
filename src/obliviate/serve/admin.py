"""The admin API under /admin: the ledger's CLI over HTTP, behind a bearer token.

    POST /admin/requests                 {"request": {kind, forget: [records], reference: [records], ...},
                                          "requester", "legal_basis", "due_by", "keep_filter", "hold"}
                                         (header Idempotency-Key: the same key returns the same request)
    GET  /admin/requests[?status=S]      GET /admin/requests/{id}      POST /admin/requests/{id}/cancel
    GET  /admin/models                   GET /admin/ledger/verify

The request body holds what a request file holds, with each file's records inline as a list: the
server reads no files. Record errors name the record as the CLI names a line ("forget.jsonl line 3"
is the third record of `request.forget`).

The token comes from $OBLIVIATE_ADMIN_TOKEN or `--admin-token-file`; it is compared in constant time
(`hmac.compare_digest`) and never logged. No token configured: every admin call answers 503.
"""

from __future__ import annotations

import hmac
import json
import shutil
import tempfile
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Depends, Header, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from obliviate.errors import ObliviateError
from obliviate.ledger.lifecycle import IllegalTransition
from obliviate.requests.request import FILE_KEYS


class ApiError(Exception):
    def __init__(self, status: int, message: str, type_: str = "invalid_request_error", code: str | None = None):
        super().__init__(message)
        self.status, self.message, self.type, self.code = status, message, type_, code


class Submission(BaseModel):
    model_config = ConfigDict(extra="forbid")
    request: dict[str, Any] = Field(description="a request file's fields; forget/reference/retain/neighbours "
                                    "as lists of records")
    requester: str | None = None
    legal_basis: str | None = None
    due_by: str | None = None
    keep_filter: bool | None = None
    hold: bool = False


class Cancellation(BaseModel):
    model_config = ConfigDict(extra="forbid")
    reason: str | None = None


def check_token(expected: str | None, authorization: str | None) -> None:
    if not expected:
        raise ApiError(503, "the admin API is disabled: set OBLIVIATE_ADMIN_TOKEN or pass --admin-token-file",
                       "service_unavailable")
    if not authorization or not authorization.lower().startswith("bearer "):
        raise ApiError(401, "missing admin token: send 'Authorization: Bearer <token>'", "authentication_error")
    if not hmac.compare_digest(authorization[7:].strip().encode(), expected.encode()):
        raise ApiError(403, "wrong admin token", "permission_error")


def prepared_from_body(fields: dict[str, Any]):
    """Write the inline records as a request folder, read it as the CLI reads a file, delete it."""
    from obliviate.ledger.store import prepare

    folder = Path(tempfile.mkdtemp(prefix="obliviate-admin-"))
    try:
        spec = dict(fields)
        for key in FILE_KEYS:
            if key not in spec or spec[key] is None:
                continue
            if not isinstance(spec[key], list):
                raise ApiError(422, f"request.{key} must be a list of records (the server reads no files)",
                               code="invalid_request")
            (folder / f"{key}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in spec[key]))
            spec[key] = f"{key}.jsonl"
        (folder / "request.json").write_text(json.dumps(spec))
        try:
            return prepare(folder / "request.json")
        except ObliviateError as err:
            raise ApiError(422, str(err).replace(f"{folder}/", "").replace(str(folder), "request"),
                           code="invalid_request") from None
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def router(state) -> APIRouter:
    """The admin routes over `state` (the server's `ServerState`: ledger, token, shield)."""
    api = APIRouter(prefix="/admin")

    def auth(authorization: str | None = Header(None)) -> None:
        check_token(state.admin_token, authorization)

    def ledger_call(fn):
        try:
            with state.ledger.begin() as session:
                return fn(session)
        except IllegalTransition as err:
            raise ApiError(409, str(err), code="illegal_transition") from None
        except ObliviateError as err:
            status = 404 if str(err).startswith("no request ") else 422
            raise ApiError(status, str(err), code="not_found" if status == 404 else "invalid_request") from None

    @api.post("/requests", dependencies=[Depends(auth)])
    def submit_request(body: Submission, idempotency_key: str | None = Header(None)):
        from obliviate.ledger.models import utcnow
        from obliviate.ledger.store import parse_due, submit
        from obliviate.ledger.views import summary

        prepared = prepared_from_body(body.request)
        try:
            parse_due(body.due_by, utcnow())
        except ObliviateError as err:
            raise ApiError(422, str(err), code="invalid_request") from None

        def go(session):
            sub = submit(session, prepared, actor=f"admin-api:{state.actor}", requester=body.requester,
                         legal_basis=body.legal_basis, due_by=body.due_by, idempotency_key=idempotency_key,
                         keep_filter_after_removal=body.keep_filter, hold=body.hold)
            return sub, summary(sub.request) | {"created": sub.created}

        sub, out = ledger_call(go)
        state.refresh_protection()  # suppressed in this server's answers from now, not at the next poll
        return JSONResponse(out, status_code=201 if sub.created else 200)

    @api.get("/requests", dependencies=[Depends(auth)])
    def list_all(status: str | None = None):
        from obliviate.ledger.lifecycle import status_of
        from obliviate.ledger.views import list_requests, summary

        if status is not None:
            try:
                status_of(status)
            except ObliviateError as err:
                raise ApiError(422, str(err), code="invalid_request") from None
        return ledger_call(lambda s: [summary(r) for r in list_requests(s, status)])

    @api.get("/requests/{request_id}", dependencies=[Depends(auth)])
    def show_one(request_id: str):
        from obliviate.ledger.views import show

        return ledger_call(lambda s: show(s, request_id))

    @api.post("/requests/{request_id}/cancel", dependencies=[Depends(auth)])
    def cancel_one(request_id: str, body: Cancellation | None = None):
        from obliviate.ledger.store import cancel
        from obliviate.ledger.views import summary

        out = ledger_call(lambda s: summary(cancel(s, request_id, actor=f"admin-api:{state.actor}",
                                                   reason=body.reason if body else None)))
        state.refresh_protection()
        return out

    @api.get("/models", dependencies=[Depends(auth)])
    def models():
        from obliviate.ledger import current_model_version, list_model_versions
        from obliviate.ledger.versions import version_dict

        def go(session):
            current = current_model_version(session)
            return [version_dict(v, current.id if current else None) for v in list_model_versions(session)]

        return ledger_call(go)

    @api.get("/ledger/verify", dependencies=[Depends(auth)])
    def verify():
        from obliviate.ledger import verify_chain

        ok, _, message = ledger_call(verify_chain)
        return JSONResponse({"ok": ok, "message": message}, status_code=200 if ok else 409)

    return api
