"""Streaming under the output audit: hold back the newest k pieces until the text around them is audited.

Each new piece is appended to the text so far and the whole text is audited; only pieces older than
the newest `k` are released. A protected value of at most k pieces completes (and is caught) while
all of its pieces are still held, so no released text contains any of it; a longer value can have
its first pieces released but never all of them. When the audit finds a leak, the held pieces are
dropped and the refusal ends the stream with finish_reason "content_filter".

    async for text, finish in audited(pieces, leaks=lambda text: shield.leaks(prompt, text, decision), k=16):
        ...   # finish: "content_filter" on the last item if the audit blocked, else None throughout
"""

from __future__ import annotations

from typing import AsyncIterator, Callable

REFUSAL = "I can't share that information."


async def audited(pieces: AsyncIterator[str], leaks: Callable[[str], list[str]], k: int,
                  refusal: str = REFUSAL, on_block: Callable[[], None] | None = None
                  ) -> AsyncIterator[tuple[str, str | None]]:
    held: list[str] = []
    text, released = "", False
    async for piece in pieces:
        if not piece:
            continue
        text += piece
        held.append(piece)
        if leaks(text):
            if on_block is not None:
                on_block()
            yield ((" " if released else "") + refusal, "content_filter")
            return
        while len(held) > k:
            released = True
            yield held.pop(0), None
    if held:
        yield "".join(held), None
