"""The reconciler's QuickBooks side: what the books hold for each order, against the store and the ledger.

Reads only (:mod:`adapters.reconcile_quickbooks_reads`): change data capture
since the last run names the documents and payments that changed or were
deleted, so a person's edit to an old order is checked even when the store has
not touched it; every bound object of the orders checked is read by id, and a
document that is gone is looked up by its DocNumber.

| what QuickBooks shows                              | finding                                         | safe     |
|----------------------------------------------------|-------------------------------------------------|----------|
| a bound document voided (the order is not void)    | ``voided_in_target``                            | no       |
| a bound document deleted (CDC says so)             | ``deleted_in_target``                           | no       |
| total / tax of the document not the store's        | ``amount_differs`` / ``tax_differs``            | no       |
| invoice balance not what our payments leave        | ``balance_differs``                             | no       |
| a bound payment or refund deleted/voided/changed   | ``payment_missing``, ``refund_missing``, ``amount_differs`` | no |
| a captured transaction or refund never booked      | ``payment_missing`` / ``refund_missing``        | yes (1)  |
| a paid order cancelled at the store, not refunded  | ``cancelled_not_refunded``                      | no       |
| the document step never done                       | ``not_booked``                                  | yes (1)  |
| a binding to an id QuickBooks does not have        | ``binding_dangling``                            | yes (2)  |
| an order the ledger never saw, already booked      | ``binding_missing``                             | yes      |

(1) not when the step is dead (a person must fix its cause). (2) a customer, or a document whose
DocNumber is found under another id; a document found nowhere is report-only.

Nothing a person did in QuickBooks is ever a safe fix: it is reported with
what a bookkeeper should do, and the books are left as they are.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from adapters.quickbooks import QuickBooksTarget
from adapters.quickbooks_documents import BINDING, document_of
from adapters.reconcile_quickbooks_reads import CDC_ENTITIES, QuickBooksReads
from connector.errors import StepError
from connector.findings import IN_PROGRESS, Finding, Fix, OrderState
from mappings.quickbooks_documents import customer_key, doc_number
from mappings.quickbooks_sales import cents, expected

LABEL = {"Invoice": "Invoice", "SalesReceipt": "Sales receipt", "Payment": "Payment",
         "RefundReceipt": "Refund receipt", "CreditMemo": "Credit memo"}
BOOKING_STEPS = ("quickbooks.invoice", "quickbooks.sales_receipt", "quickbooks.payment", "quickbooks.refund")
ACCEPT = "If that is intended, accept this finding: o2c reconcile --accept {id}."


class QuickBooksChecker:
    """Compares one QuickBooks company with the ledger and the stores' orders."""

    system = "quickbooks"

    def __init__(self, target: QuickBooksTarget, ledger, prefixes: dict[str, str]):
        self.target = target
        self.ledger = ledger
        self.prefixes = prefixes
        self.reads = QuickBooksReads(target, ledger)

    @property
    def cdc_note(self) -> str | None:
        return self.reads.cdc_note

    def changed_orders(self, store: str, since: datetime) -> set[str]:
        """Order keys of ``store`` whose booked objects changed or were deleted since ``since`` (CDC)."""
        return self.reads.changed_orders(store, since)

    # -- the comparison ----------------------------------------------------------------------
    def check(self, states: list[OrderState]) -> list[Finding]:
        booked = [s for s in states if s.ledger_order is not None and s.order is not None]
        documents = {s.order_key: document_of(self.ledger, s.order_key) for s in booked}
        wanted: dict[str, set[str]] = {entity: set() for entity in CDC_ENTITIES}
        for found in documents.values():
            if found:
                wanted[found[0]].add(found[1])
        money_bindings: dict[str, dict] = {}
        for state in booked:
            for kind, items in (("payment", state.order.transactions), ("refund", state.order.refunds)):
                for item in items:
                    key = f"{state.order_key}|{_id_of(item)}"
                    bound = self.ledger.binding("quickbooks", kind, key)
                    if bound:
                        details = self.ledger.binding_details("quickbooks", kind, key) or {}
                        money_bindings[key] = {"id": bound, **details}
                        wanted["Payment" if kind == "payment" else details.get("entity") or "RefundReceipt"].add(bound)
        objects = {entity: self.reads.read(entity, ids) for entity, ids in wanted.items()}
        customers = {}
        for state in booked:
            ckey = customer_key(state.order)
            bound = self.ledger.binding("quickbooks", "customer", ckey)
            if bound:
                customers.setdefault(ckey, (bound, state.order_key))
        present = self.reads.customers({bound for bound, _ in customers.values()})

        findings: list[Finding] = []
        gone_docs = [(s, documents[s.order_key]) for s in booked if documents[s.order_key]
                     and documents[s.order_key][1] not in objects[documents[s.order_key][0]]]
        by_number = self.reads.by_doc_number([(found[0], found[2].get("DocNumber")) for _, found in gone_docs])
        for state in booked:
            findings += self._order(state, documents[state.order_key], objects, money_bindings, by_number)
        for ckey, (bound, order_key) in customers.items():
            if bound not in present:
                findings.append(Finding(
                    order_key, "quickbooks", "binding_dangling", "quickbooks.customer",
                    f"the ledger binds shopper {ckey} to QuickBooks Customer {bound}, which QuickBooks does not have "
                    "(not even inactive)", "--fix forgets this binding and runs the customer step again: it finds the "
                    "customer by email or name (or creates one) before anything new is booked for this shopper",
                    True, {"ledger": bound, "quickbooks": None},
                    Fix(unbind=(("quickbooks", "customer", ckey),), steps=("quickbooks.customer",))))
        findings += self._never_synced([s for s in states if s.ledger_order is None and s.store_order is not None])
        return findings

    def _order(self, state: OrderState, document, objects, money_bindings, by_number) -> list[Finding]:
        order = state.order
        if document is None:
            return self._not_booked(state)
        entity, doc_id, details = document
        step = f"quickbooks.{BINDING[entity]}"
        label = f"{LABEL[entity]} {details.get('DocNumber') or doc_id}"
        doc = objects[entity].get(doc_id)
        if doc is None:
            return [self._gone_document(state, entity, doc_id, details, by_number)]
        captured = sum((t.amount.rounded().amount for t in order.transactions if t.is_captured_money), Decimal(0))
        refunded = sum((r.amount.rounded().amount for r in order.refunds), Decimal(0))
        figures = {"currency": order.currency}
        if doc.voided:
            if details.get("Voided") or (order.cancelled_at is not None and not captured):
                return []  # the connector voided it, or the order is void at the store and its void step will see it
            return [Finding(state.order_key, "quickbooks", "voided_in_target", step,
                            f"{label} was voided in QuickBooks; the store's order {order.name} is "
                            f"{_status(order)} for {order.total.rounded().amount} {order.currency}",
                            f"A person voided {label} in QuickBooks. If the void was a mistake, enter the sale again "
                            f"in QuickBooks (a void cannot be undone); if the order really is void, cancel or refund "
                            f"it at the store. {ACCEPT}",
                            False, {**figures, "store": str(order.total.rounded().amount), "quickbooks": "voided"})]
        findings = []
        want = expected(order)
        for kind, ours, theirs, booked_as in (("amount_differs", want.total, doc.total, details.get("TotalAmt")),
                                              ("tax_differs", want.tax, doc.tax, details.get("TotalTax"))):
            if ours != theirs:
                what = "total" if kind == "amount_differs" else "tax"
                findings.append(Finding(
                    state.order_key, "quickbooks", kind, step,
                    f"{label} {what} is {theirs} in QuickBooks; the store's order {order.name} says {ours} "
                    f"{order.currency} (booked as {booked_as})",
                    _differs_action(label, what, ours, theirs, booked_as, details, order), False,
                    {**figures, "store": str(ours), "quickbooks": str(theirs), "booked": booked_as}))
        payments_applied = Decimal(0)
        for txn in order.transactions if entity == "Invoice" else ():
            if not txn.is_captured_money or txn.amount.is_zero():
                continue
            finding, applied = self._money(state, "payment", txn, objects, money_bindings, label)
            payments_applied += applied.get(doc_id, Decimal(0))
            if finding:
                findings.append(finding)
        legacy = self.ledger.binding("quickbooks", "payment", state.order_key)  # one payment per order (old ledgers)
        if legacy:
            payments_applied = None
        for refund in order.refunds:
            if not refund.amount.is_zero():
                finding, _ = self._money(state, "refund", refund, objects, money_bindings, label)
                if finding:
                    findings.append(finding)
        if entity == "Invoice" and payments_applied is not None and doc.balance is not None:
            want_balance = doc.total - payments_applied
            if doc.balance != want_balance:
                findings.append(Finding(
                    state.order_key, "quickbooks", "balance_differs", step,
                    f"{label} has a balance of {doc.balance} in QuickBooks; its total {doc.total} less the "
                    f"connector's payments ({payments_applied}) leaves {want_balance}",
                    f"A payment, credit or adjustment was applied to (or taken off) {label} in QuickBooks outside the "
                    f"connector. The store's order {order.name} has {captured} {order.currency} captured. Remove a "
                    f"wrong or duplicate payment in QuickBooks. {ACCEPT}",
                    False, {**figures, "quickbooks": str(doc.balance), "expected": str(want_balance),
                            "store_captured": str(captured)}))
        if order.cancelled_at is not None and captured > refunded:
            findings.append(Finding(
                state.order_key, "quickbooks", "cancelled_not_refunded", step,
                f"order {order.name} was cancelled at the store with {captured - refunded} {order.currency} of its "
                f"money not refunded; {label} and its payments stand",
                "The money is still with the merchant. Refund the order at the store (the connector books the "
                f"refund), or, if the money is kept, leave {label} as it is. {ACCEPT}",
                False, {**figures, "store_captured": str(captured), "store_refunded": str(refunded)}))
        return findings

    def _money(self, state: OrderState, kind: str, item, objects, money_bindings, label: str):
        """A payment (per captured transaction) or refund: booked and still there, or missing."""
        order = state.order
        item_id = _id_of(item)
        step = f"quickbooks.{kind}:{item_id}"
        what = f"transaction {item_id}" if kind == "payment" else f"refund {item_id}"
        amount = item.amount.rounded().amount
        finding_kind = f"{kind}_missing"
        bound = money_bindings.get(f"{state.order_key}|{item_id}")
        figures = {"currency": order.currency, "store": str(amount)}
        if bound:
            entity = "Payment" if kind == "payment" else bound.get("entity") or "RefundReceipt"
            name = f"{LABEL[entity]} {bound.get('DocNumber') or bound['id']}"
            obj = objects[entity].get(bound["id"])
            if obj is None or obj.voided:
                how = "voided" if obj is not None else (
                    "deleted" if (entity, bound["id"]) in self.reads.deleted else "not found")
                again = (f"enter the payment again in QuickBooks against {label}" if kind == "payment" else
                         f"enter the refund again in QuickBooks for {label}")
                return Finding(
                    state.order_key, "quickbooks", finding_kind, step,
                    f"{name} ({amount} {order.currency}, {what}) is {how} in QuickBooks",
                    f"The store's order {order.name} has {what} for {amount} {order.currency}, which the connector "
                    f"booked as {name}; a person {how if how != 'not found' else 'removed'} it in QuickBooks. If the "
                    f"store is right, {again}; if the money did not move, correct the order at the store. {ACCEPT}",
                    False, {**figures, "quickbooks": how, "booked": bound["id"]}), {}
            booked = bound.get("TotalAmt")
            if booked not in (None, "", "None") and cents(booked) != obj.total:
                return Finding(
                    state.order_key, "quickbooks", "amount_differs", step,
                    f"{name} is {obj.total} in QuickBooks; it was booked as {booked} for {what} ({amount} at the "
                    "store)",
                    f"A person changed {name} in QuickBooks after it was booked. Set it back to {amount} "
                    f"{order.currency} in QuickBooks if the store is right. {ACCEPT}",
                    False, {**figures, "quickbooks": str(obj.total), "booked": booked}), obj.applied
            return None, obj.applied
        if state.ledger_order is not None and not any(_id_of(i) == item_id for i in (
                state.ledger_order.transactions if kind == "payment" else state.ledger_order.refunds)):
            return None, {}  # the ledger is behind the store: behind_store re-reads it, then the step is planned
        current = state.state(step)
        if current in IN_PROGRESS:
            return None, {}
        if current == "dead":
            found = state.steps[step]
            return Finding(state.order_key, "quickbooks", finding_kind, step,
                           f"{what} ({amount} {order.currency}) is not booked: its step is dead ({found.error})",
                           f"{found.what_to_do or 'Fix what the error says'}; then: o2c replay --order "
                           f"{state.order_key} --step {step}", False, {**figures, "quickbooks": None}), {}
        return Finding(state.order_key, "quickbooks", finding_kind, step,
                       f"{what} ({amount} {order.currency}) was never booked in QuickBooks (step "
                       f"{current or 'not planned'})",
                       f"--fix books it through the normal {kind} step, which looks for it in QuickBooks first "
                       f"(nothing is booked twice)", True, {**figures, "quickbooks": None},
                       Fix(steps=(step,), probe=True)), {}

    def _not_booked(self, state: OrderState) -> list[Finding]:
        steps = [s for s in ("quickbooks.invoice", "quickbooks.sales_receipt") if s in state.steps]
        if any(state.state(s) in IN_PROGRESS for s in steps):
            return []
        order = state.order
        dead = [s for s in steps if state.state(s) == "dead"]
        if dead:
            found = state.steps[dead[0]]
            return [Finding(state.order_key, "quickbooks", "not_booked", dead[0],
                            f"order {order.name} ({order.total.rounded().amount} {order.currency}) has no document in "
                            f"QuickBooks: its step is dead ({found.error})",
                            f"{found.what_to_do or 'Fix what the error says'}; then: o2c replay --order "
                            f"{state.order_key} --step {dead[0]}", False, {"store": str(order.total.amount)})]
        step = steps[0] if steps else "quickbooks.invoice"
        return [Finding(state.order_key, "quickbooks", "not_booked", step,
                        f"order {order.name} ({order.total.rounded().amount} {order.currency}) has no document in "
                        f"QuickBooks (step {state.state(step) or 'not planned'})",
                        "--fix plans and runs its QuickBooks steps, which look the DocNumber up first", True,
                        {"store": str(order.total.amount)},
                        Fix(steps=("quickbooks.customer",) + BOOKING_STEPS, probe=True))]

    def _gone_document(self, state: OrderState, entity: str, doc_id: str, details: dict, by_number) -> Finding:
        order = state.order
        number = details.get("DocNumber")
        step = f"quickbooks.{BINDING[entity]}"
        label = f"{LABEL[entity]} {number or doc_id}"
        figures = {"currency": order.currency, "store": str(order.total.rounded().amount), "ledger": doc_id}
        if (entity, doc_id) in self.reads.deleted:
            return Finding(state.order_key, "quickbooks", "deleted_in_target", step,
                           f"{label} (id {doc_id}) was deleted in QuickBooks; the store's order {order.name} is "
                           f"{_status(order)} for {order.total.rounded().amount} {order.currency}",
                           f"A person deleted {label} in QuickBooks; the connector will not book it again on its own. "
                           f"If the order belongs in the books, enter it again in QuickBooks with DocNumber {number}; "
                           f"if it does not, cancel or refund it at the store. {ACCEPT}",
                           False, {**figures, "quickbooks": "deleted"})
        other = by_number.get((entity, number)) if number else None
        if other is not None and state.order_key in other.note:
            return Finding(state.order_key, "quickbooks", "binding_dangling", step,
                           f"the ledger binds the order to {LABEL[entity]} {doc_id}, which QuickBooks does not have; "
                           f"{LABEL[entity]} {other.id} numbered {number} is this order's",
                           f"--fix forgets the old binding and binds {LABEL[entity]} {other.id} (the step looks "
                           "the DocNumber up before writing: nothing is created)", True,
                           {**figures, "quickbooks": other.id},
                           Fix(unbind=(("quickbooks", BINDING[entity], state.order_key),), steps=(step,), probe=True))
        return Finding(state.order_key, "quickbooks", "binding_dangling", step,
                       f"the ledger binds the order to {LABEL[entity]} {doc_id} ({number}), and QuickBooks has no such "
                       "document, by id or by number",
                       f"Check that quickbooks.realm_id is the company the connector books into. If it is, {label} "
                       "was deleted longer ago than change data capture reaches (30 days): enter it again in "
                       f"QuickBooks with DocNumber {number}, or cancel the order at the store. {ACCEPT}",
                       False, {**figures, "quickbooks": None})

    def _never_synced(self, states: list[OrderState]) -> list[Finding]:
        """Orders the ledger never recorded: does QuickBooks already hold them (a ledger restored from a backup)?"""
        numbers = {}
        for state in states:
            try:
                numbers[state.order_key] = doc_number(state.store_order, self.prefixes.get(state.store_order.store, ""))
            except StepError:
                continue
        findings = []
        for entity in ("Invoice", "SalesReceipt"):
            found = self.target.find_by_doc_numbers(entity, sorted(set(numbers.values()))) if numbers else {}
            for state in states:
                obj = found.get(numbers.get(state.order_key, ""))
                if obj is None or state.order_key not in (obj.get("PrivateNote") or ""):
                    continue
                findings.append(Finding(
                    state.order_key, "quickbooks", "binding_missing", f"quickbooks.{BINDING[entity]}",
                    f"QuickBooks already has {LABEL[entity]} {obj['Id']} ({numbers[state.order_key]}, "
                    f"{cents(obj.get('TotalAmt'))}) for this order, which the ledger never recorded",
                    f"--fix reads the order in and binds {LABEL[entity]} {obj['Id']} and its payments: every "
                    "QuickBooks step looks in QuickBooks before writing, so nothing is booked twice", True,
                    {"quickbooks": obj["Id"], "ledger": None},
                    Fix(refetch=True, steps=BOOKING_STEPS, probe=True)))
        return findings


def _id_of(item) -> str:
    return getattr(item, "source_transaction_id", None) or item.source_refund_id


def _status(order) -> str:
    if order.cancelled_at is not None:
        return "cancelled"
    return order.financial_status.value.replace("_", " ")


def _differs_action(label, what, ours, theirs, booked_as, details, order) -> str:
    if booked_as not in (None, "", "None") and cents(booked_as) != theirs:
        return (f"A person changed {label} in QuickBooks after it was booked ({what} {booked_as} -> {theirs}). "
                f"Set it back to the store's {ours} {order.currency} in QuickBooks if the store is right; the "
                f"connector never overwrites a person's change. {ACCEPT}")
    if details.get("Mismatch"):
        return (f"{label} differed from the store when it was booked (QuickBooks computed {theirs}). Correct the "
                f"{what} in QuickBooks to {ours} {order.currency}, or fix the tax or item settings that caused it. "
                f"{ACCEPT}")
    return (f"The store's order {order.name} changed after it was booked ({what} {booked_as} -> {ours}); the "
            f"connector does not edit booked documents. Adjust {label} in QuickBooks to {ours} {order.currency} (or "
            f"refund the difference at the store). {ACCEPT}")
