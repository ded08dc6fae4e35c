"""The small protocols through which the engine reaches sources and targets.

The engine knows no vendor: it pulls pages of canonical orders from an
:class:`OrderSource` and hands due steps to a :class:`StepRunner`. The
composition root (:mod:`connector.composition`) builds the concrete ones.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Iterator, Protocol

from connector.model import Order


class OrderSource(Protocol):
    """One configured store."""

    store: str
    system: str
    calls: int
    posting: str  # the store's QuickBooks posting mode: invoice | sales_receipt

    def fetch_changed(self, since: datetime, until: datetime) -> Iterator[list[dict]]:
        """Yield pages of raw order payloads whose source updated time is in ``[since, until)``."""

    def to_order(self, payload: dict) -> Order:
        """Map one raw payload to a balanced canonical order (raises ``MappingError``)."""

    def source_id(self, payload: dict) -> str:
        """The store's id of the order in ``payload`` (to name a payload that did not map)."""


class BulkSource(OrderSource, Protocol):
    """A store that can export a whole window at once (Shopify bulk operations)."""

    def bulk_start(self, since: datetime, until: datetime) -> str:
        """Start an export of the orders updated in ``[since, until)``; return its id."""

    def bulk_wait(self, operation_id: str, poll_seconds: float = 2.0) -> str | None:
        """Wait until the export is ready; return its download URL (None when empty)."""

    def bulk_download(self, url: str, path) -> None:
        """Download the export to ``path``, atomically."""

    def bulk_pages(self, path, skip: int = 0) -> Iterator[list[dict]]:
        """Pages of raw order payloads from a downloaded export, after the first ``skip``."""


@dataclass(frozen=True)
class Work:
    """One due step and the order snapshot it acts on."""

    step_id: int
    step: str
    order: Order
    request_id: str | None
    attempts: int


@dataclass
class Outcome:
    """How one attempt ended. ``state`` is done | skipped | failed | dead."""

    step_id: int
    state: str
    external_id: str | None = None
    error: Exception | None = None
    created: bool = False  # True when this attempt created something remote
    note: str | None = None
    # What the events table keeps of the attempt (docs/ledger.md, migration 8): a hash of the body
    # sent (connector.events.payload_hash, never the body), a short summary of what the target
    # answered or what the step found, and the deterministic request id of the step's write.
    payload_hash: str | None = None
    response: str | None = None
    request_id: str | None = None


class StepRunner(Protocol):
    """Runs the steps of one target system."""

    system: str
    steps: tuple[str, ...]  # the step names it runs, in the order they must run
    batch_size: int
    calls: int

    def run(self, step: str, work: list[Work]) -> list[Outcome]:
        """Run a batch of due steps of one kind; one outcome per item of ``work``."""


@dataclass
class Tally:
    """Counts a runner reports for the summary: ``{'contacts created': 3, ...}``."""

    counts: dict[str, int] = field(default_factory=dict)

    def add(self, name: str, n: int = 1) -> None:
        self.counts[name] = self.counts.get(name, 0) + n
