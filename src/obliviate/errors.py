"""The one exception type for user errors: bad config, unknown name, missing file.

The CLI prints `error: <message>` on one line and exits with status 2 for these; anything else
is a bug and keeps its traceback. Messages name the bad input and the fix.
"""

from __future__ import annotations


class ObliviateError(Exception):
    """A mistake the user can fix; the message says what was wrong and how to fix it."""
