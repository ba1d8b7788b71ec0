"""Upstream mode: the server forwards each request to another OpenAI-compatible server (vLLM, TGI,
the llama.cpp server, or another `obliviate serve`) and audits what comes back.

    up = Upstream("http://gpu-box:8000/v1")
    body = await up.post("/chat/completions", payload)            # non-streaming
    async for chunk in up.stream("/chat/completions", payload):   # parsed SSE chunks, up to [DONE]
        ...
"""

from __future__ import annotations

import json
from typing import AsyncIterator

import httpx


class UpstreamError(Exception):
    """The upstream answered with an error (status, OpenAI error body) or could not be reached (502)."""

    def __init__(self, status: int, body: dict):
        super().__init__(body.get("error", {}).get("message", "upstream error"))
        self.status, self.body = status, body


def _error(status: int, message: str) -> UpstreamError:
    return UpstreamError(status, {"error": {"message": message, "type": "upstream_error", "code": None,
                                            "param": None}})


class Upstream:
    def __init__(self, base_url: str, api_key: str | None = None, timeout_s: float = 300.0):
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self.base_url = base_url.rstrip("/")
        self.client = httpx.AsyncClient(base_url=self.base_url, headers=headers, timeout=timeout_s)

    async def models(self) -> list[str]:
        response = await self._send("GET", "/models")
        return [m["id"] for m in response.json().get("data", [])]

    async def post(self, path: str, payload: dict) -> dict:
        return (await self._send("POST", path, json=payload)).json()

    async def stream(self, path: str, payload: dict) -> AsyncIterator[dict]:
        try:
            async with self.client.stream("POST", path, json=payload) as response:
                if response.status_code >= 400:
                    await response.aread()
                    raise self._from_response(response)
                async for line in response.aiter_lines():
                    if not line.startswith("data:"):
                        continue
                    data = line[5:].strip()
                    if data == "[DONE]":
                        return
                    yield json.loads(data)
        except httpx.HTTPError as err:
            raise _error(502, f"upstream {self.base_url} failed: {type(err).__name__}") from None

    async def _send(self, method: str, path: str, **kwargs) -> httpx.Response:
        try:
            response = await self.client.request(method, path, **kwargs)
        except httpx.HTTPError as err:
            raise _error(502, f"upstream {self.base_url} unreachable: {type(err).__name__}") from None
        if response.status_code >= 400:
            raise self._from_response(response)
        return response

    @staticmethod
    def _from_response(response: httpx.Response) -> UpstreamError:
        try:
            body = response.json()
        except ValueError:
            return _error(502, f"upstream answered {response.status_code} without a JSON body")
        if not isinstance(body, dict) or "error" not in body:
            return _error(502, f"upstream answered {response.status_code}")
        return UpstreamError(response.status_code, body)

    async def close(self) -> None:
        await self.client.aclose()
