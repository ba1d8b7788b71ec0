"""`obliviate serve` in a child process on a free port of 127.0.0.1 (tests and benchmarks).

    with ServerProcess(["--model", "runs/.../target", "--db", "sqlite:///l.db"], log="server.log") as server:
        httpx.get(f"{server.url}/readyz")
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ServerProcess:
    """Starts the server and waits until /readyz answers 200; `stop` sends SIGTERM (graceful) and waits."""

    def __init__(self, args: list[str], log: str | Path, env: dict | None = None, ready_s: float = 300):
        self.port, self.log = free_port(), Path(log)
        self.proc = subprocess.Popen([sys.executable, "-m", "obliviate.cli", "serve", "--port", str(self.port), *args],
                                     env={**os.environ, **(env or {})}, stdout=subprocess.DEVNULL,
                                     stderr=self.log.open("w"))
        self.url = f"http://127.0.0.1:{self.port}"
        deadline = time.monotonic() + ready_s
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited {self.proc.returncode}: {self.log.read_text()[-3000:]}")
            try:
                if httpx.get(f"{self.url}/readyz", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                self.proc.kill()
                raise RuntimeError(f"server not ready in {ready_s:.0f} s: {self.log.read_text()[-3000:]}")
            time.sleep(0.2)

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                raise
        return self.proc.returncode

    def __enter__(self) -> "ServerProcess":
        return self

    def __exit__(self, *exc) -> None:
        self.stop()
