"""Runs the ``quickbooks.*`` steps: customer, invoice, payment.

Each step follows the same named sequence: already bound? -> (after an
attempt whose answer was lost) probe the target -> map -> create with a
deterministic ``requestid`` -> bind at once. The binding, committed right
after the create, is what makes the effect exactly-once (DESIGN.md
guarantee 2); the ``requestid`` covers the window between the create and
the binding.
"""

from __future__ import annotations

from adapters.quickbooks import DUPLICATE_NAME, QuickBooksTarget
from connector.errors import PermanentError, StepError
from connector.protocols import Outcome, Work
from mappings.quickbooks_documents import (ItemRefs, customer_body, customer_key, disambiguated_name,
                                           display_name, doc_number, invoice_body, payment_body, request_id)


class QuickBooksRunner:
    system = "quickbooks"
    steps = ("quickbooks.customer", "quickbooks.invoice", "quickbooks.payment")
    batch_size = 30

    def __init__(self, target: QuickBooksTarget, ledger, settings, doc_prefixes: dict[str, str]):
        self.target = target
        self.ledger = ledger
        self.settings = settings
        self.doc_prefixes = doc_prefixes

    @property
    def calls(self) -> int:
        return self.target.calls

    def run(self, step: str, work: list[Work]) -> list[Outcome]:
        handler = {"quickbooks.customer": self._customer, "quickbooks.invoice": self._invoice,
                   "quickbooks.payment": self._payment}[step]
        items = self._items(work) if step == "quickbooks.invoice" else None
        outcomes = []
        for item in work:
            try:
                outcomes.append(handler(item, items))
            except StepError as exc:
                outcomes.append(Outcome(item.step_id, "failed", error=exc))
        return outcomes

    # -- customer -----------------------------------------------------------
    def _customer(self, item: Work, _items) -> Outcome:
        order = item.order
        key = customer_key(order)
        bound = self.ledger.binding("quickbooks", "customer", key)
        if bound:
            return Outcome(item.step_id, "done", external_id=bound)
        found = self.target.find_customer(email=order.customer.email) if order.customer.email else None
        name = display_name(order, self.settings.display_name_template)
        if found is None:
            same_name = self.target.find_customer(display_name=name)
            if same_name is not None and _same_person(same_name, order):
                found = same_name
            elif same_name is not None:
                name = disambiguated_name(name, order)  # a different person already owns the name
                found = self.target.find_customer(display_name=name)
        if found is not None:
            self.ledger.bind("quickbooks", "customer", key, found["Id"], {"DisplayName": found.get("DisplayName")})
            return Outcome(item.step_id, "done", external_id=found["Id"], note="found existing customer")
        try:
            created = self.target.create("Customer", customer_body(order, name),
                                         request_id(key, "quickbooks.customer"))
        except PermanentError as exc:
            if exc.code != str(DUPLICATE_NAME):
                raise
            # 6240: the name exists after all (an inactive customer, a vendor, a race): find and bind it.
            found = self.target.find_customer(display_name=name)
            if found is None:
                raise PermanentError(
                    f"QuickBooks says the name '{name}' is taken, but no customer has it (a vendor or employee "
                    "does)", system="quickbooks", code=exc.code,
                    what_to_do="rename the vendor or employee in QuickBooks, or change "
                               "quickbooks.display_name_template; then replay") from exc
            self.ledger.bind("quickbooks", "customer", key, found["Id"], {"DisplayName": name})
            return Outcome(item.step_id, "done", external_id=found["Id"], note="bound after duplicate name")
        self.ledger.bind("quickbooks", "customer", key, created["Id"], {"DisplayName": name})
        return Outcome(item.step_id, "done", external_id=created["Id"], created=True)

    # -- items --------------------------------------------------------------
    def _items(self, work: list[Work]) -> ItemRefs:
        """Resolve every SKU of the batch to an item id: ledger cache, config map, then one query."""
        skus = {line.sku for w in work for line in w.order.lines if line.sku}
        wanted = {sku: self.settings.item_map.get(sku, sku) for sku in skus}
        names = set(wanted.values()) | {self.settings.shipping_item}
        if self.settings.default_item:
            names.add(self.settings.default_item)
        ids = {n: self.ledger.binding("quickbooks", "item", n) for n in names}
        missing = sorted(n for n, i in ids.items() if i is None)
        if missing:
            for name, item_id in self.target.find_items(missing).items():
                if name in ids and ids[name] is None:
                    ids[name] = item_id
                    self.ledger.bind("quickbooks", "item", name, item_id)
        return ItemRefs(
            by_sku={sku: ids[name] for sku, name in wanted.items() if ids.get(name)},
            shipping=ids.get(self.settings.shipping_item),
            fallback=ids.get(self.settings.default_item) if self.settings.default_item else None,
        )

    # -- invoice ------------------------------------------------------------
    def _invoice(self, item: Work, items: ItemRefs) -> Outcome:
        order = item.order
        bound = self.ledger.binding("quickbooks", "invoice", order.order_key)
        if bound:
            return Outcome(item.step_id, "done", external_id=bound)
        number = doc_number(order, self.doc_prefixes.get(order.store, ""))
        if item.attempts > 1:
            # An earlier attempt may have booked it and lost the answer: look before creating again.
            existing = self.target.find_by_doc_number("Invoice", number)
            if existing is not None:
                self._bind_invoice(order.order_key, existing)
                return Outcome(item.step_id, "done", external_id=existing["Id"], note="found by DocNumber")
        customer_id = self.ledger.binding("quickbooks", "customer", customer_key(order))
        body = invoice_body(order, customer_id, items, number)
        created = self.target.create("Invoice", body, request_id(order.order_key, "quickbooks.invoice"))
        self._bind_invoice(order.order_key, created)
        return Outcome(item.step_id, "done", external_id=created["Id"], created=True)

    def _bind_invoice(self, order_key: str, invoice: dict) -> None:
        self.ledger.bind("quickbooks", "invoice", order_key, invoice["Id"], {
            "DocNumber": invoice.get("DocNumber"), "TotalAmt": str(invoice.get("TotalAmt")),
            "Balance": str(invoice.get("Balance")), "SyncToken": invoice.get("SyncToken")})

    # -- payment ------------------------------------------------------------
    def _payment(self, item: Work, _items) -> Outcome:
        order = item.order
        bound = self.ledger.binding("quickbooks", "payment", order.order_key)
        if bound:
            return Outcome(item.step_id, "done", external_id=bound)
        invoice_id = self.ledger.binding("quickbooks", "invoice", order.order_key)
        customer_id = self.ledger.binding("quickbooks", "customer", customer_key(order))
        body = payment_body(order, customer_id, invoice_id)
        created = self.target.create("Payment", body, request_id(order.order_key, "quickbooks.payment"))
        self.ledger.bind("quickbooks", "payment", order.order_key, created["Id"],
                         {"TotalAmt": str(created.get("TotalAmt"))})
        return Outcome(item.step_id, "done", external_id=created["Id"], created=True)


def _same_person(customer: dict, order) -> bool:
    """A customer found by name is the shopper unless both have emails and they differ."""
    theirs = ((customer.get("PrimaryEmailAddr") or {}).get("Address") or "").lower()
    ours = (order.customer.email or "").lower()
    return not theirs or not ours or theirs == ours
