"""Public stream names: the one rule for what a name may be.

A name appears in URLs, file names in the store, log lines and metric labels, so it is kept
plain. Keys (the secrets publishers hold) are mapped to names by `golive.ingest.keys` only;
every other stage knows a stream by its name alone.
"""

from __future__ import annotations

MAX_NAME_LENGTH = 64


def is_valid_stream_name(name: str) -> bool:
    """Letters, digits, '-', '_' and '.', not starting with '.', at most 64 characters."""
    return (
        0 < len(name) <= MAX_NAME_LENGTH
        and name[0] != "."
        and all(c.isascii() and (c.isalnum() or c in "-_.") for c in name)
    )
