"""Worker processes for independent jobs (training target and gold, curve points, sweep points)."""

from __future__ import annotations

import os
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_all_start_methods, get_context


def process_pool(jobs: int, threads: int | None = None) -> ProcessPoolExecutor:
    """A pool of at most one worker per core (or per `threads`) and per job.

    fork, where there is one, does not re-run the caller's script, which spawn would do to a
    script without an `if __name__ == "__main__"` guard.
    """
    os.environ["TOKENIZERS_PARALLELISM"] = "false"  # the tokenizers Rust pool must not be forked in use
    workers = max(1, min(jobs, threads or os.cpu_count() or 1))
    return ProcessPoolExecutor(workers, mp_context=get_context("fork" if "fork" in get_all_start_methods() else "spawn"))
