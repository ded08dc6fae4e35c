"""What a QuickBooks company holds, for the reconciler: reads only, reduced to :class:`Held` records.

Change data capture (``GET /cdc``, ../shared/notes/quickbooks.md §2.3) names
what changed since a moment; deleted objects come last as ``{"status":
"Deleted"}`` stubs, which tell a person's deletion from a binding that points
at nothing. ``changedSince`` is sent with an explicit offset: python-quickbooks
formats datetimes without one, and QuickBooks would read the time in the
company's zone. The CDC call goes through the target's client (``change_data_capture``
of python-quickbooks, the raw answer), so tokens, retries and error classes are
the target's. Objects are read by id, 100 per query; customers inactive ones
too (QuickBooks never deletes a customer, it makes it inactive).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timezone
from decimal import Decimal

from adapters.quickbooks import QuickBooksTarget, quote
from connector.errors import StepError
from mappings.quickbooks_sales import cents

CDC_ENTITIES = ("Invoice", "SalesReceipt", "Payment", "RefundReceipt", "CreditMemo")
KIND_OF = {"Invoice": "invoice", "SalesReceipt": "sales_receipt", "Payment": "payment", "RefundReceipt": "refund",
           "CreditMemo": "refund"}
CDC_MAX = 1000  # objects per CDC answer (notes §2.3)


@dataclass(frozen=True)
class Held:
    """One object as QuickBooks holds it, reduced to what the reconciler compares."""

    entity: str
    id: str
    doc_number: str | None
    total: Decimal
    tax: Decimal
    balance: Decimal | None
    voided: bool
    note: str
    applied: dict[str, Decimal] = field(default_factory=dict)  # payments: invoice id -> amount applied


def held(entity: str, obj: dict) -> Held:
    applied: dict[str, Decimal] = {}
    for line in obj.get("Line") or []:
        for link in line.get("LinkedTxn") or []:
            if link.get("TxnType") == "Invoice":
                applied[str(link.get("TxnId"))] = applied.get(str(link.get("TxnId")), Decimal(0)) + cents(
                    line.get("Amount"))
    note = obj.get("PrivateNote") or ""
    return Held(entity, str(obj["Id"]), obj.get("DocNumber"), cents(obj.get("TotalAmt")),
                cents((obj.get("TxnTaxDetail") or {}).get("TotalTax")),
                cents(obj["Balance"]) if obj.get("Balance") not in (None, "") else None,
                note.startswith("Voided"), note, applied)


def cdc_stamp(moment: datetime) -> str:
    """``changedSince`` with an explicit offset: a bare time would be read in the company's zone."""
    return moment.astimezone(timezone.utc).replace(microsecond=0).isoformat()


class QuickBooksReads:
    """Reads one company for the reconciler; remembers what CDC said was deleted."""

    def __init__(self, target: QuickBooksTarget, ledger):
        self.target = target
        self.ledger = ledger
        self.deleted: set[tuple[str, str]] = set()  # (entity, id) CDC reported deleted
        self.cdc_note: str | None = None  # why CDC could not be used, or that it was cut short
        self._captured: dict[str, dict[str, set[str]]] = {}

    # -- change data capture ---------------------------------------------------------------
    def changed_orders(self, store: str, since: datetime) -> set[str]:
        """Order keys of ``store`` whose booked objects changed or were deleted since ``since``."""
        stamp = cdc_stamp(since)
        if stamp not in self._captured:  # one CDC call per run of all stores, not one per store
            self._captured[stamp] = self._capture(stamp)
        ids = self._captured[stamp]
        keys = set()
        for kind, wanted in ids.items():
            wanted = sorted(wanted)
            for start in range(0, len(wanted), 500):
                chunk = wanted[start:start + 500]
                for (canonical,) in self.ledger.conn.execute(
                        f"SELECT canonical_key FROM bindings WHERE system = 'quickbooks' AND kind = ? AND external_id"
                        f" IN ({','.join('?' * len(chunk))})", (kind, *chunk)):
                    order_key = canonical.split("|", 1)[0]
                    if order_key.startswith(store + ":"):
                        keys.add(order_key)
        return keys

    def _capture(self, stamp: str) -> dict[str, set[str]]:
        """``{binding kind: ids}`` of what changed since ``stamp``; deleted objects are remembered apart."""
        try:
            answer = self.target._call(lambda qb: qb.change_data_capture(",".join(CDC_ENTITIES), stamp))
        except StepError as exc:
            self.cdc_note = f"change data capture unavailable: {exc}"
            return {}
        ids: dict[str, set[str]] = {}
        for response in answer.get("CDCResponse") or []:
            for group in response.get("QueryResponse") or []:
                for entity in CDC_ENTITIES:
                    objects = group.get(entity) or []
                    if len(objects) >= CDC_MAX:
                        self.cdc_note = "change data capture answered 1000 objects (its limit); some may be missing"
                    for obj in objects:
                        if str(obj.get("status", "")).lower() == "deleted":
                            self.deleted.add((entity, str(obj["Id"])))
                        ids.setdefault(KIND_OF[entity], set()).add(str(obj["Id"]))
        return ids

    # -- reads -------------------------------------------------------------------------------
    def read(self, entity: str, ids: set[str]) -> dict[str, Held]:
        if not ids:
            return {}
        return {i: held(entity, obj) for i, obj in self.target.read_many(entity, sorted(ids)).items()}

    def customers(self, ids: set[str]) -> set[str]:
        """Which of ``ids`` QuickBooks has, inactive customers too (they are never deleted, only made inactive)."""
        found: set[str] = set()
        wanted = sorted(ids)
        for start in range(0, len(wanted), 100):
            values = ", ".join(f"'{quote(i)}'" for i in wanted[start:start + 100])
            for customer in self.target.query(f"SELECT * FROM Customer WHERE Id IN ({values}) AND Active IN"
                                              " (true, false) MAXRESULTS 1000").get("Customer", []):
                found.add(str(customer["Id"]))
        return found

    def by_doc_number(self, wanted: list[tuple[str, str | None]]) -> dict[tuple[str, str], Held]:
        found: dict[tuple[str, str], Held] = {}
        for entity in {e for e, n in wanted if n}:
            numbers = sorted({n for e, n in wanted if e == entity and n})
            for number, obj in self.target.find_by_doc_numbers(entity, numbers).items():
                found[(entity, number)] = held(entity, obj)
        return found
