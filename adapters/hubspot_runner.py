"""Runs the ``hubspot.*`` steps: contacts here; deals and the QuickBooks write-back in
:mod:`adapters.hubspot_deals`.

Contacts are keyed by lower-cased email; several orders of one shopper in a
batch become one upsert input carrying the newest order's details (HubSpot
rejects two inputs that resolve to one record; ../shared/notes/hubspot.md §2.1).
Every order's contact is also bound by order key (``order_contact``), so the
deal step finds it whichever way it was found (email, or phone for orders
without an email).

Recovery table:
| what happens                          | outcome                                               |
|---------------------------------------|-------------------------------------------------------|
| no email, ``no_email_rule: skip``     | skipped, with the reason                              |
| no email, ``match_by_phone``, no hit  | skipped, naming the phone searched                    |
| no email and no phone                 | skipped, with the reason                              |
| one contact refused in a 207          | that order's step dead with HubSpot's message          |
| 429/5xx after in-request retries      | the batch's steps failed (retried on the ledger schedule) |
"""

from __future__ import annotations

from adapters.hubspot import HubSpotTarget
from adapters.hubspot_deals import DealSteps
from connector.errors import SkippableError
from connector.events import error_answer, payload_hash
from connector.protocols import Outcome, Work
from mappings.hubspot_contact import contact_key, contact_properties


class HubSpotRunner:
    system = "hubspot"
    steps = ("hubspot.contact", "hubspot.deal", "hubspot.deal_sync")
    batch_size = 100  # notes §3: at most 100 inputs per batch call

    def __init__(self, target: HubSpotTarget, ledger, settings):
        self.target = target
        self.ledger = ledger
        self.settings = settings
        self.deals = DealSteps(target, ledger, settings)

    @property
    def calls(self) -> int:
        return self.target.calls

    def run(self, step: str, work: list[Work]) -> list[Outcome]:
        """Run one batch of ``step`` (a kind: ``hubspot.contact``, ``hubspot.deal``, ``hubspot.deal_sync``)."""
        if step == "hubspot.contact":
            return self._contacts(work)
        if step == "hubspot.deal":
            return self.deals.run_deals(work)
        if step == "hubspot.deal_sync":
            return self.deals.run_sync(work)
        raise ValueError(f"HubSpotRunner does not run {step!r}")

    # -- contacts -----------------------------------------------------------
    def _contacts(self, work: list[Work]) -> list[Outcome]:
        outcomes: dict[int, Outcome] = {}
        newest: dict[str, Work] = {}
        for item in work:
            email = contact_key(item.order)
            if email is None:
                outcomes[item.step_id] = self._without_email(item)
            elif email not in newest or item.order.updated_at >= newest[email].order.updated_at:
                newest[email] = item
        properties = {email: contact_properties(item.order, self.settings.lifecycle_stage)
                      for email, item in newest.items()}
        results = self.target.upsert("contacts", properties, "email") if properties else {}
        reported_new = set()
        for item in work:
            if item.step_id in outcomes:
                continue
            email = contact_key(item.order)
            result = results[email]
            sent = payload_hash(properties[email])  # the newest order's details went for the whole shopper
            if result.error is not None:
                outcomes[item.step_id] = Outcome(item.step_id, "failed", error=result.error, payload_hash=sent,
                                                 response=error_answer(result.error))
                continue
            self.ledger.bind("hubspot", "contact", email, result.object_id)
            self.ledger.bind("hubspot", "order_contact", item.order.order_key, result.object_id)
            created = result.created and email not in reported_new
            reported_new.add(email)
            outcomes[item.step_id] = Outcome(
                item.step_id, "done", external_id=result.object_id, created=created, payload_hash=sent,
                response=f"contact {result.object_id} {'created' if result.created else 'updated'}")
        return [outcomes[item.step_id] for item in work]

    def _without_email(self, item: Work) -> Outcome:
        """The configured rule for an order without an email: skip, or match a contact by phone."""
        order = item.order
        if self.settings.no_email_rule == "skip":
            return _skip(item, f"order {order.name} has no email, and hubspot.no_email_rule is 'skip'")
        address = order.billing_address or order.shipping_address
        phone = order.customer.phone or (address.phone if address else None)
        if not phone:
            return _skip(item, f"order {order.name} has neither an email nor a phone to match a contact by")
        try:
            contact_id = self.target.find_contact_by_phone(phone)
        except Exception as exc:  # classified by the adapter: retry or needs a person
            return Outcome(item.step_id, "failed", error=exc)
        if contact_id is None:
            return _skip(item, f"order {order.name} has no email, and no HubSpot contact has the phone {phone}")
        self.ledger.bind("hubspot", "order_contact", order.order_key, contact_id, {"matched_by": "phone"})
        return Outcome(item.step_id, "done", external_id=contact_id, note=f"matched by phone {phone}",
                       response=f"contact {contact_id} found by phone")


def _skip(item: Work, reason: str) -> Outcome:
    return Outcome(item.step_id, "skipped", error=SkippableError(reason, system="hubspot"))
