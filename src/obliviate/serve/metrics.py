"""The server's Prometheus metrics, in a registry of its own (two servers in one process do not collide).

    obliviate_http_requests_total{route, status}     requests answered
    obliviate_http_request_seconds{route}            latency histogram
    obliviate_guard_flags_total                      prompts the classifier flagged
    obliviate_guard_blocks_total                     responses the output audit replaced
    obliviate_ledger_requests{status}                forget requests in each state (read at scrape time)
    obliviate_protected_targets                      targets the guard protects now
    obliviate_served_model_version                   the ledger's model version served (0: none)
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from sqlalchemy import func, select

from obliviate.ledger import Request
from obliviate.ledger.lifecycle import Status


class Metrics:
    def __init__(self):
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter("obliviate_http_requests", "HTTP requests answered", ["route", "status"], registry=r)
        self.latency = Histogram("obliviate_http_request_seconds", "HTTP request latency", ["route"], registry=r,
                                 buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60))
        self.flags = Counter("obliviate_guard_flags", "prompts the classifier flagged", registry=r)
        self.blocks = Counter("obliviate_guard_blocks", "responses the output audit replaced", registry=r)
        self.ledger = Gauge("obliviate_ledger_requests", "forget requests by status", ["status"], registry=r)
        self.targets = Gauge("obliviate_protected_targets", "targets the guard protects now", registry=r)
        self.version = Gauge("obliviate_served_model_version", "model version served (0: none)", registry=r)

    def read_ledger(self, ledger) -> None:
        with ledger.begin() as session:
            counts = dict(session.execute(select(Request.status, func.count()).group_by(Request.status)).all())
        for status in Status:
            self.ledger.labels(status.value).set(counts.get(status.value, 0))
