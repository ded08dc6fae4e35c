"""The ``quickbooks.void`` step for a batch of cancelled orders: up to 30 voids per batch call.

Voids sent one by one were the only plain QuickBooks requests left in a
backfill (about one per 16 orders, issue 9). A batch item voids with
``operation: update`` and ``optionsData: void`` (notes §2.2), so two or more
voids go through the batch endpoint; a single one (and every dry run, which
runs one item at a time) keeps the documented single call
(:func:`adapters.quickbooks_documents.run_voids`).

Everything but the plain case is left to that single path, unchanged:
nothing bound, already voided, and a void refused with 5010 (the document
is re-read there: voided, our own payments moved the SyncToken, or held for
review). A batch answer that is not voided (its PrivateNote does not start
with "Voided") means this QuickBooks did not take the void in a batch: the
binding gets the answer's SyncToken, the void is sent singly, and every
later void of this process goes singly too (logged once).
"""

from __future__ import annotations

import logging
import uuid

from adapters.quickbooks import BATCH_MAX, STALE_OBJECT
from adapters.quickbooks_runner import Books, stamp, summary
from connector.errors import StepError
from connector.events import error_answer, payload_hash
from connector.protocols import Outcome, Work
from mappings.quickbooks_documents import REQUEST_ID_NAMESPACE, request_id

LOG = logging.getLogger("o2c.quickbooks")


def run_voids(books: Books, kind: str, work: list[Work]) -> dict[int, Outcome]:
    from adapters import quickbooks_documents as documents
    ready, single = [], []
    for item in work:
        found = documents.document_of(books.ledger, item.order.order_key)
        if found is None or found[2].get("Voided") or books.single_voids:
            single.append(item)
        else:
            ready.append((item, *found))
    if len(ready) < 2:
        return documents.run_voids(books, kind, work)
    outcomes = documents.run_voids(books, kind, single) if single else {}
    for start in range(0, len(ready), BATCH_MAX):
        outcomes.update(_batch(books, kind, ready[start:start + BATCH_MAX]))
    return stamp(work, outcomes)


def _batch(books: Books, kind: str, chunk: list) -> dict[int, Outcome]:
    from adapters import quickbooks_documents as documents
    rids = [request_id(item.order.order_key, "quickbooks.void") for item, *_ in chunk]
    bodies = [{"Id": doc_id, "SyncToken": details.get("SyncToken") or "0", "sparse": True}
              for _, _, doc_id, details in chunk]
    batch_id = str(uuid.uuid5(REQUEST_ID_NAMESPACE, "|".join(rids)))
    try:
        results = books.target.void_batch([(f"b{i}", entity, body) for i, ((_, entity, _, _), body)
                                           in enumerate(zip(chunk, bodies))], batch_id)
    except StepError as exc:
        results = {f"b{i}": exc for i in range(len(chunk))}
    outcomes: dict[int, Outcome] = {}
    for i, ((item, entity, doc_id, _), body, rid) in enumerate(zip(chunk, bodies, rids)):
        result, where = results[f"b{i}"], f"(batch {batch_id} b{i})"
        if isinstance(result, StepError) and result.code == str(STALE_OBJECT):
            outcomes.update(documents.run_voids(books, kind, [item]))  # re-read, retry or hold for review
            continue
        if isinstance(result, Exception):
            answer = error_answer(result)
            outcomes[item.step_id] = Outcome(item.step_id, "failed", error=result, payload_hash=payload_hash(body),
                                             request_id=rid, response=f"{answer} {where}" if answer else None)
            continue
        if not (result.get("PrivateNote") or "").startswith("Voided"):
            if not books.single_voids:
                LOG.warning("QuickBooks answered a batch void of %s %s without voiding it; voids are sent one "
                            "by one from now on", entity, doc_id)
            books.single_voids = True
            documents.bind_document(books, item.order.order_key, entity, result)  # its SyncToken moved
            outcomes.update(documents.run_voids(books, kind, [item]))
            continue
        documents.bind_document(books, item.order.order_key, entity, result, {"Voided": True})
        outcomes[item.step_id] = Outcome(item.step_id, "done", external_id=doc_id, created=True, note="voided",
                                         payload_hash=payload_hash(body), request_id=rid,
                                         response=f"voided: {summary(entity, result)} {where}")
    return outcomes
