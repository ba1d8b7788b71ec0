"""`obliviate serve`: an OpenAI-compatible server that keeps the ledger's promises while it serves.

    app.py       the FastAPI app: /v1 routes, /healthz, /readyz, /metrics, JSON logs, body limits
    wire.py      the OpenAI request, response, chunk and error shapes
    shield.py    the protected facts from the ledger: prompt classifier and output audit, hot-reloaded
    engine.py    local mode: the model on one thread, concurrent requests batched, GUARD on flagged rows
    upstream.py  upstream mode: proxy to any OpenAI-compatible server, audited
    holdback.py  streaming under the audit: the newest k pieces held until audited
    admin.py     /admin: the ledger's CLI over HTTP, behind a bearer token
    metrics.py   Prometheus metrics
"""
