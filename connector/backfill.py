"""``o2c backfill``: take a store's whole history in, resumably.

Named steps, each recorded in the ``backfills`` table before the next
begins, so a run killed at any point resumes where it stopped instead of
starting over (and never starts a second export for the same window):
start the export -> wait for it -> download it -> commit orders page by
page (the page and the count of orders done in one transaction) -> move the
store's cursor up to the window's end.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from connector.engine import Progress, StorePull, record_page
from connector.errors import SourceError
from connector.ledger import Ledger, iso, utcnow
from connector.protocols import BulkSource


@dataclass
class BackfillResult:
    store: str
    pull: StorePull
    operation_id: str | None
    resumed: bool


def _parse(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def backfill_store(source: BulkSource, settings, ledger: Ledger, since: datetime, *, workdir: Path,
                   progress: Progress | None = None, poll_seconds: float = 2.0) -> BackfillResult:
    """Backfill one store from ``since`` up to now (less the safety lag)."""
    if not hasattr(source, "bulk_start"):
        raise SourceError(source.store, f"{source.system} has no bulk export; backfill it with o2c sync and an"
                          " early initial_cursor in the config", retryable=False)
    until = utcnow() - timedelta(seconds=settings.safety_lag_seconds)
    job = ledger.open_backfill(source.store, iso(since), iso(until))
    resumed = job["status"] != "started" or job["orders_done"] > 0
    window_end = _parse(job["until"])
    result = StorePull(source.store)

    if not job["operation_id"]:
        operation_id = source.bulk_start(since, window_end)
        ledger.update_backfill(job["id"], operation_id=operation_id, status="running")
        job = ledger.backfill(job["id"])

    if job["status"] == "running" or not (job["file"] and Path(job["file"]).exists()):
        try:
            url = source.bulk_wait(job["operation_id"], poll_seconds)
        except SourceError as exc:
            ledger.update_backfill(job["id"], status="failed", error=str(exc))
            raise
        workdir.mkdir(parents=True, exist_ok=True)
        path = workdir / f"bulk-{source.store}-{job['id']}.jsonl"
        if url:
            source.bulk_download(url, path)
        else:
            path.write_text("")  # finished without a file: the window holds no orders
        ledger.update_backfill(job["id"], file=str(path), status="downloaded")
        job = ledger.backfill(job["id"])

    done = job["orders_done"]
    for page in source.bulk_pages(Path(job["file"]), skip=done):
        with ledger.transaction():
            record_page(source, page, ledger, result, via="backfill")
            done += len(page)
            ledger.update_backfill(job["id"], orders_done=done)
        if progress:
            progress(f"backfill:{source.store}", len(page))
        del page  # committed: let it go before the next page is assembled (one page in memory, not two)

    cursor = ledger.cursor(source.store)
    if cursor is None or _parse(cursor) < window_end:
        ledger.set_cursor(source.store, iso(window_end))
    ledger.update_backfill(job["id"], status="done")
    ledger.record_event("pull", "ok", detail=f"backfill {source.store} from {iso(since)}: {done} orders")
    return BackfillResult(source.store, result, job["operation_id"], resumed)
