"""Group commit for the webhook server: one writer thread commits every waiting delivery at once.

A request hands its checked delivery to :meth:`GroupCommitter.commit` and awaits
the answer. One thread, with a ledger connection of its own, takes whatever
deliveries are waiting when it is free (up to ``max_batch``), writes them in one
transaction (:func:`connector.inbox.add_many`), commits, and only then resolves
each request's future with its ``(inbox id, new)``. So the 2xx still comes
after the row is on disk (DESIGN.md guarantee 1), and the commit's fsync
(``synchronous=FULL``) is paid once per group instead of once per delivery.
There is no waiting to fill a group: a delivery arriving at an idle committer is
committed alone at once; while one transaction commits, the next group forms.

| what happens                               | what the requests of that group get                 |
|--------------------------------------------|-----------------------------------------------------|
| the transaction commits                    | their ``(inbox id, new)``; the server says 200      |
| a delivery repeats one in the same group   | the first is new, the repeat a duplicate of it      |
| the transaction raises (disk, lock, a bug) | :class:`CommitFailed`, nothing stored: 503, the     |
|                                            | store sends again; other groups are untouched       |
| the committer is closed                    | queued ones are still committed; later ones get     |
|                                            | :class:`CommitFailed`                               |
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading

from connector import inbox
from connector.ledger import Ledger

LOG = logging.getLogger("o2c.webhooks")
MAX_BATCH = 512  # deliveries per transaction: bounds one commit's time when a burst has queued up
_STOP = object()


class CommitFailed(Exception):
    """The delivery's group could not be committed: nothing of it is stored; answer 5xx."""


class GroupCommitter:
    """The single writer of webhook deliveries: a thread, its connection, and the queue in front of it.

    Args:
        ledger_path: the ledger file; the committer opens (and migrates) its own connection.
        max_batch: the most deliveries one transaction takes.
    """

    def __init__(self, ledger_path, *, max_batch: int = MAX_BATCH):
        self.ledger = Ledger(ledger_path)
        # The 200 promises the row survives a crash: make this connection's commits fsync'd
        # (the ledger's NORMAL already survives a killed process; FULL survives power loss too).
        # Grouping is what pays for it: one fsync per transaction, however many deliveries it holds.
        self.ledger.conn.execute("PRAGMA synchronous=FULL")
        self.max_batch = max_batch
        self.write = inbox.add_many  # (ledger, deliveries) -> [(id, new)]; tests replace it to fail a group
        self.batches = 0  # transactions committed
        self.committed = 0  # deliveries in them
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._closed = False

    async def commit(self, delivery: inbox.Delivery) -> tuple[int, bool]:
        """Wait until ``delivery`` is committed; return ``(inbox id, True if new)``.

        Raises:
            CommitFailed: its group's transaction failed, or the committer is closed.
        """
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        with self._lock:  # with close(): nothing is queued behind the stop marker, so nothing is stranded
            if self._closed:
                raise CommitFailed("the webhook server is stopping")
            if self._thread is None:
                # A daemon thread: it holds no promise of its own; a delivery is acknowledged only after
                # its commit, so a process ending mid-transaction loses nothing that was answered 2xx.
                self._thread = threading.Thread(target=self._run, name="webhook-committer", daemon=True)
                self._thread.start()
            self._queue.put((delivery, future, loop))
        return await future

    def waiting(self) -> int:
        """Deliveries queued and not yet taken into a transaction."""
        return self._queue.qsize()

    def close(self, timeout: float = 10.0) -> None:
        """Commit what is queued, stop the thread, close the connection."""
        with self._lock:
            self._closed = True
            thread = self._thread
            if thread is not None:
                self._queue.put(_STOP)
        if thread is not None:
            thread.join(timeout)
            if thread.is_alive():
                LOG.warning("webhook committer still busy after %ss; its connection stays open", timeout)
                return
        self.ledger.close()

    def _run(self) -> None:
        stopping = False
        while not stopping:
            item = self._queue.get()
            if item is _STOP:
                break
            group = [item]  # ... and whatever else is waiting now, with no pause to let more come
            while len(group) < self.max_batch:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is _STOP:  # close(): commit this last group, then end
                    stopping = True
                    break
                group.append(item)
            self._commit(group)

    def _commit(self, group: list) -> None:
        try:
            outcomes = self.write(self.ledger, [delivery for delivery, _, _ in group])
            self.batches += 1
            self.committed += len(group)
        except Exception as exc:  # noqa: BLE001 - whatever it was, this group is not stored
            LOG.error("webhook inbox commit failed for %d deliveries (answered 503, the stores send again): %s",
                      len(group), exc)
            failure = CommitFailed(f"the inbox could not be written: {exc}")
            outcomes = [failure] * len(group)
        by_loop: dict = {}
        for (_, future, loop), outcome in zip(group, outcomes):
            by_loop.setdefault(loop, []).append((future, outcome))
        for loop, settled in by_loop.items():
            try:
                # One wake-up of the event loop per group, not one per delivery.
                loop.call_soon_threadsafe(_settle, settled)
            except RuntimeError:  # that server's loop is closed: nobody is waiting for an answer
                pass


def _settle(settled: list) -> None:
    for future, outcome in settled:
        if future.done():  # the request was cancelled (client gone): its row stays, as for a retry
            continue
        if isinstance(outcome, BaseException):
            future.set_exception(outcome)
        else:
            future.set_result(outcome)
