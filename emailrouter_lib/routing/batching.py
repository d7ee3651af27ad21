"""The items of one incoming batch: at most ``batch_size`` of them and about ``batch_bytes``.

A batch is held in memory whole, from fetching to the CRM commit, so a count alone does not bound
memory: 200 messages of 50 MB each would be 10 GB of bytes before any parsing. The listing
already says how big most items are (IMAP ``RFC822.SIZE``, POP3 ``LIST``, the Maildir file), so a
batch is planned by those sizes; and because a size can be missing (some servers, EWS) or wrong,
fetching stops as well once the bytes in hand reach the budget, and the keys not fetched yet go
to the next batch. A single item larger than the budget still makes a batch of its own.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from emailrouter_lib.mailboxes.base import MailboxSource


def plan_batch(
    todo: Sequence[str],
    start: int,
    sizes: Mapping[str, int | None],
    *,
    count: int,
    budget: int,
) -> list[str]:
    """The keys of the next batch from ``todo[start:]``: at most *count*, and by the listed
    *sizes* (unknown counts as 0) at most *budget* bytes; always at least one key."""
    end, total = start, 0
    while end < len(todo) and end - start < count:
        size = sizes.get(todo[end]) or 0
        if end > start and total + size > budget:
            break
        total += size
        end += 1
    return list(todo[start:end])


def fetch_batch(
    source: MailboxSource, keys: Sequence[str], *, budget: int
) -> tuple[list[tuple[str, bytes]], int]:
    """Fetch *keys* in order until *budget* bytes are in hand.

    Returns what was fetched and how many of *keys* that covers: all of them, or up to the key
    whose bytes reached the budget (the others are fetched in a later batch). A key the source
    skips (gone since the listing) counts as covered.
    """
    fetched: list[tuple[str, bytes]] = []
    total = 0
    stream = source.fetch(keys)
    try:
        for key, raw in stream:
            fetched.append((key, raw))
            total += len(raw)
            if total >= budget:
                break
    finally:
        close = getattr(stream, "close", None)
        if close is not None:  # a generator: let it leave its loop (and its server command) now
            close()
    if total < budget or not fetched:
        return fetched, len(keys)
    return fetched, list(keys).index(fetched[-1][0]) + 1


__all__ = ["fetch_batch", "plan_batch"]
