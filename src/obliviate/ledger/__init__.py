"""The forget-request ledger (issue 18): every request from arrival to verified removal, with a
tamper-evident audit trail and the model versions that satisfied them. See docs/ledger.md.

    from obliviate.ledger import open_ledger, store, transition, protected_facts
    ledger = open_ledger("postgresql+psycopg://ops@db/ledger")   # or a SQLite path; default ./obliviate-ledger.db
    with ledger.begin() as session:
        request = store.submit(session, "request.yaml", actor="ops").request   # received -> suppressed -> queued
        transition(session, request, "unlearning", actor="worker-1")           # attempts += 1

Modules, one job each: db (open, migrate), models (tables), lifecycle (the state machine), audit
(hash chain), store (submit and actions), views (list, show), facts (the guard's protected facts),
purge (what the payload keeps per state), versions (model versions). Importing it loads no torch.
"""

from obliviate.ledger.audit import ChainCheck, append_event, verify_chain
from obliviate.ledger.db import Ledger, open_ledger
from obliviate.ledger.facts import protected_facts, protected_targets
from obliviate.ledger.lifecycle import TRANSITIONS, IllegalTransition, Status, transition
from obliviate.ledger.models import Event, ModelVersion, Request
from obliviate.ledger.purge import purge_payload
from obliviate.ledger.store import (Submitted, cancel, enqueue, get_request, reject, request_data, resupply, submit,
                                    suppress)
from obliviate.ledger.versions import (current_model_version, directory_sha256, list_model_versions,
                                       register_model_version)
from obliviate.ledger.views import list_requests, show

__all__ = ["ChainCheck", "Event", "IllegalTransition", "Ledger", "ModelVersion", "Request", "Status", "Submitted",
           "TRANSITIONS", "append_event", "cancel", "current_model_version", "directory_sha256", "enqueue",
           "get_request", "list_model_versions", "list_requests", "open_ledger", "protected_facts",
           "protected_targets", "purge_payload", "register_model_version", "reject", "request_data", "resupply",
           "show", "submit", "suppress", "transition", "verify_chain"]
