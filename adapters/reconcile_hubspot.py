"""The reconciler's HubSpot side: each order's deal (and its contact) as HubSpot holds it.

Reads only: deals in batches of 100 by the unique order-key property
(``batch/read`` with ``idProperty``, notes/hubspot.md §2.1), contacts by
email the same way. HubSpot is the CRM, not the books, so every difference
here is repaired by ``--fix`` through the normal deal and contact steps
(upserts by unique properties: exactly once):

| what HubSpot shows                                            | finding            |
|---------------------------------------------------------------|--------------------|
| no deal with the order key, though the deal step is done      | ``deal_missing``   |
| amount, currency, pipeline or stage not the store's            | ``deal_out_of_date`` (subject ``hubspot.deal``) |
| QuickBooks number, balance or status not the ledger's booking  | ``deal_out_of_date`` (``deal_sync:<n>``) |
| the deal or contact bound in the ledger is gone or another one | ``binding_dangling`` |
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation

from adapters.hubspot import HubSpotTarget
from adapters.hubspot_deals import DOCUMENT_KINDS
from connector.findings import Finding, Fix, OrderState
from mappings.hubspot_contact import contact_key
from mappings.hubspot_deal import booking_properties, deal_properties

DEAL_FIELDS = ("amount", "deal_currency_code", "pipeline", "dealstage")
BOOKING_FIELDS = ("o2c_qbo_doc_number", "o2c_qbo_balance", "o2c_qbo_status")


def _same(field: str, ours: str | None, theirs: str | None) -> bool:
    if field in ("amount", "o2c_qbo_balance"):
        try:
            return Decimal(str(ours)) == Decimal(str(theirs))
        except (InvalidOperation, TypeError, ValueError):
            return (ours or "") == (theirs or "")
    return (ours or "") == (theirs or "")


class HubSpotChecker:
    """Compares one HubSpot account's deals and contacts with the stores' orders and the ledger."""

    system = "hubspot"

    def __init__(self, target: HubSpotTarget, ledger, settings):
        self.target = target
        self.ledger = ledger
        self.settings = settings
        self.stages = settings.stage_map()

    def changed_orders(self, store: str, since) -> set[str]:
        return set()  # HubSpot has no change feed for this: the window and the open findings decide

    def check(self, states: list[OrderState]) -> list[Finding]:
        key_prop = self.settings.order_key_property
        dealt = [s for s in states if s.ledger_order is not None and s.state("hubspot.deal") == "done"]
        deals = self.target.read_by_property("deals", key_prop, [s.order_key for s in dealt],
                                             list(DEAL_FIELDS + BOOKING_FIELDS)) if dealt else {}
        findings: list[Finding] = []
        for state in dealt:
            findings += self._deal(state, deals.get(state.order_key))
        findings += self._contacts(states)
        return findings

    def _deal(self, state: OrderState, deal: dict | None) -> list[Finding]:
        order = state.order
        bound = self.ledger.binding("hubspot", "deal", state.order_key)
        sync = state.latest("hubspot.deal_sync")
        if deal is None:
            steps = ("hubspot.deal",) + ((sync,) if sync and state.state(sync) == "done" else ())
            return [Finding(state.order_key, "hubspot", "deal_missing", "hubspot.deal",
                            f"HubSpot has no deal for order {order.name} (bound deal {bound}); it was deleted or "
                            "merged",
                            "--fix writes the deal again through the deal step (upsert by the order key: one deal)",
                            True, {"ledger": bound, "hubspot": None}, Fix(steps=steps))]
        if bound and str(deal["id"]) != str(bound):
            return [Finding(state.order_key, "hubspot", "binding_dangling", "hubspot.deal",
                            f"the ledger binds order {order.name} to deal {bound}, but the deal with its order key is "
                            f"{deal['id']}", "--fix runs the deal step again, which binds the deal HubSpot has",
                            True, {"ledger": bound, "hubspot": deal["id"]}, Fix(steps=("hubspot.deal",)))]
        props = deal.get("properties") or {}
        want = deal_properties(order, stages=self.stages, pipeline=self.settings.pipeline,
                               key_property=self.settings.order_key_property,
                               name_template=self.settings.deal_name_template)
        findings = []
        stale = {f: (want[f], props.get(f)) for f in DEAL_FIELDS if not _same(f, want[f], props.get(f))}
        if stale:
            findings.append(Finding(
                state.order_key, "hubspot", "deal_out_of_date", "hubspot.deal",
                f"deal {deal['id']} of order {order.name}: " + ", ".join(
                    f"{f} is {theirs!r}, the store says {ours!r}" for f, (ours, theirs) in stale.items()),
                "--fix writes the deal again from the store's order through the deal step (a salesperson's edit "
                "of these fields is overwritten: the deal follows the order)", True,
                {"store": {f: ours for f, (ours, _) in stale.items()},
                 "hubspot": {f: theirs for f, (_, theirs) in stale.items()}}, Fix(steps=("hubspot.deal",))))
        booking = self._booking(state.order_key)
        if sync and state.state(sync) == "done" and booking is not None:
            want_booking = booking_properties(*booking)
            stale = {f: (want_booking.get(f), props.get(f)) for f in BOOKING_FIELDS
                     if not _same(f, want_booking.get(f), props.get(f))}
            if stale:
                findings.append(Finding(
                    state.order_key, "hubspot", "deal_out_of_date", sync,
                    f"deal {deal['id']} of order {order.name}: " + ", ".join(
                        f"{f} is {theirs!r}, the books say {ours!r}" for f, (ours, theirs) in stale.items()),
                    "--fix writes the QuickBooks number, balance and status back to the deal again", True,
                    {"ledger": {f: ours for f, (ours, _) in stale.items()},
                     "hubspot": {f: theirs for f, (_, theirs) in stale.items()}}, Fix(steps=(sync,))))
        return findings

    def _booking(self, order_key: str) -> tuple[str, dict, bool] | None:
        for kind in DOCUMENT_KINDS:
            if self.ledger.binding("quickbooks", kind, order_key):
                details = self.ledger.binding_details("quickbooks", kind, order_key) or {}
                voided = bool(self.ledger.binding("quickbooks", "void", order_key)) or bool(details.get("Voided")) \
                    or str(details.get("Status", details.get("status", ""))).lower() == "voided"
                return kind, details, voided
        return None

    def _contacts(self, states: list[OrderState]) -> list[Finding]:
        """Contacts bound by email: one finding per shopper whose contact HubSpot no longer has."""
        bound: dict[str, tuple[str, str]] = {}
        for state in sorted(states, key=lambda s: s.order_key):
            if state.ledger_order is None or state.state("hubspot.contact") != "done":
                continue
            email = contact_key(state.order)
            contact = self.ledger.binding("hubspot", "contact", email) if email else None
            if contact:
                bound.setdefault(email, (contact, state.order_key))
        if not bound:
            return []
        found = self.target.read_by_property("contacts", "email", sorted(bound), ["email"])
        findings = []
        for email, (contact, order_key) in bound.items():
            held = found.get(email)
            if held is not None and str(held["id"]) == str(contact):
                continue
            now = f"the contact with that email is {held['id']}" if held else "HubSpot has no contact with that email"
            findings.append(Finding(
                order_key, "hubspot", "binding_dangling", "hubspot.contact",
                f"the ledger binds {email} to contact {contact}; {now}",
                "--fix runs the contact step again (upsert by email: one contact) and the deal step, which links "
                "the deal to it", True, {"ledger": contact, "hubspot": held["id"] if held else None},
                Fix(steps=("hubspot.contact", "hubspot.deal"))))
        return findings
