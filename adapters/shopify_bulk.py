"""Shopify bulk operations for backfills: run, poll, download, reassemble JSONL.

Flow from ../shared/notes/shopify.md §1 "Bulk operations": run the query with
``bulkOperationRunQuery``, poll ``node(id:)`` until COMPLETED, download the
JSONL at ``url``. Each node of a nested connection is its own line with
``__parentId``; with 2026-01's ``groupObjects: false`` children need not
follow their parent, so the file is reassembled in two passes through a
temporary SQLite file: memory stays flat however many orders the shop has.
"""

from __future__ import annotations

import json
import os
import sqlite3
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import httpx

from adapters.shopify_queries import BULK_POLL, BULK_RUN, bulk_orders_query
from connector.errors import SourceError

CHILD_KINDS = {"LineItem": "lineItems", "ShippingLine": "shippingLines"}
FINISHED = {"COMPLETED", "FAILED", "CANCELED", "EXPIRED"}


@dataclass(frozen=True)
class BulkStatus:
    operation_id: str
    status: str
    url: str | None = None
    error: str | None = None
    object_count: int = 0


class ShopifyBulk:
    """Bulk operations of one shop, through a :class:`adapters.shopify.ShopifySource`."""

    def __init__(self, source, *, poll_seconds: float = 2.0):
        self.source = source
        self.poll_seconds = poll_seconds

    def start(self, search: str) -> str:
        """Start the bulk query; wait while another operation of ours is running."""
        for _ in range(120):
            data = self.source._execute(BULK_RUN, {"query": bulk_orders_query(search, self.source.money)},
                                        "RunBulk")
            result = data["bulkOperationRunQuery"]
            errors = result.get("userErrors") or []
            if not errors:
                return result["bulkOperation"]["id"]
            if any(e.get("code") == "OPERATION_IN_PROGRESS" for e in errors):
                time.sleep(self.poll_seconds)
                continue
            raise SourceError(self.source.store, "Shopify refused the bulk query: "
                              + "; ".join(e.get("message", "") for e in errors), retryable=False)
        raise SourceError(self.source.store, "another bulk operation kept running; try the backfill later")

    def status(self, operation_id: str) -> BulkStatus:
        node = self.source._execute(BULK_POLL, {"id": operation_id}, "PollBulk")["node"]
        if node is None:
            return BulkStatus(operation_id, "EXPIRED", error="Shopify no longer knows this bulk operation")
        return BulkStatus(operation_id, node["status"], node.get("url"), node.get("errorCode"),
                          int(node.get("objectCount") or 0))

    def wait(self, operation_id: str, timeout: float = 24 * 3600) -> BulkStatus:
        deadline = time.monotonic() + timeout
        while True:
            status = self.status(operation_id)
            if status.status in FINISHED:
                return status
            if time.monotonic() > deadline:
                raise SourceError(self.source.store, f"bulk operation {operation_id} still {status.status}")
            time.sleep(self.poll_seconds)

    def download(self, url: str, path: Path) -> Path:
        """Stream the JSONL to ``path`` (atomically: a half download is never mistaken for a whole one)."""
        tmp = path.with_suffix(".part")
        with httpx.stream("GET", url, timeout=120, follow_redirects=True) as response:
            if response.status_code != 200:
                raise SourceError(self.source.store, f"bulk result download failed: HTTP {response.status_code}")
            with open(tmp, "wb") as fh:
                for chunk in response.iter_bytes(1 << 16):
                    fh.write(chunk)
        os.replace(tmp, path)
        return path


def reassemble(path: Path, *, skip: int = 0, page_size: int = 250) -> Iterator[list[dict]]:
    """Yield pages of whole Order nodes from a bulk JSONL file, in file order.

    Args:
        path: the downloaded JSONL.
        skip: orders already committed by an earlier, interrupted run.
        page_size: orders per page (one ledger transaction each).
    """
    with tempfile.TemporaryDirectory(prefix="o2c-bulk-") as tmp:
        index = sqlite3.connect(os.path.join(tmp, "index.db"))
        index.execute("PRAGMA journal_mode=OFF")
        index.execute("CREATE TABLE parents (seq INTEGER PRIMARY KEY, id TEXT, body TEXT)")
        index.execute("CREATE TABLE children (seq INTEGER PRIMARY KEY, parent TEXT, kind TEXT, body TEXT)")
        with open(path, encoding="utf-8") as fh:
            for line in fh:
                if not line.strip():
                    continue
                node = json.loads(line)  # the line itself is stored: parsed again when its order is whole
                parent = node.get("__parentId")
                if parent is None:
                    index.execute("INSERT INTO parents (id, body) VALUES (?, ?)", (node["id"], line))
                else:
                    kind = node["id"].split("/")[-2]
                    index.execute("INSERT INTO children (parent, kind, body) VALUES (?, ?, ?)",
                                  (parent, CHILD_KINDS.get(kind, kind), line))
        index.execute("CREATE INDEX children_parent ON children(parent, seq)")
        index.commit()
        page: list[dict] = []
        rows = index.execute("SELECT id, body FROM parents ORDER BY seq LIMIT -1 OFFSET ?", (skip,))
        for order_id, body in rows:
            order = json.loads(body)
            order["lineItems"] = {"pageInfo": {"hasNextPage": False, "endCursor": None}, "nodes": []}
            order["shippingLines"] = {"nodes": []}
            for kind, child in index.execute(
                    "SELECT kind, body FROM children WHERE parent = ? ORDER BY seq", (order_id,)):
                node = json.loads(child)
                del node["__parentId"]
                order.setdefault(kind, {"nodes": []})["nodes"].append(node)
            page.append(order)
            if len(page) == page_size:
                yield page
                page = []
        if page:
            yield page
        index.close()
