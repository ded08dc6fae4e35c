"""Runs the ``hubspot.*`` steps: contacts now (deals and line items come with issue 5).

Contacts are keyed by lower-cased email; several orders of one shopper in a
batch become one upsert input carrying the newest order's details.
"""

from __future__ import annotations

from adapters.hubspot import HubSpotTarget
from connector.errors import SkippableError
from connector.protocols import Outcome, Work
from mappings.hubspot_contact import contact_key, contact_properties


class HubSpotRunner:
    system = "hubspot"
    steps = ("hubspot.contact",)
    batch_size = 100

    def __init__(self, target: HubSpotTarget, ledger, settings):
        self.target = target
        self.ledger = ledger
        self.settings = settings

    @property
    def calls(self) -> int:
        return self.target.calls

    def run(self, step: str, work: list[Work]) -> list[Outcome]:
        outcomes: dict[int, Outcome] = {}
        newest: dict[str, Work] = {}
        for item in work:
            email = contact_key(item.order)
            if email is None:
                outcomes[item.step_id] = Outcome(item.step_id, "skipped", error=SkippableError(
                    f"order {item.order.name} has no email, and hubspot.no_email_rule is 'skip'",
                    system="hubspot"))
                continue
            if email not in newest or item.order.updated_at >= newest[email].order.updated_at:
                newest[email] = item
        properties = {email: contact_properties(item.order, self.settings.lifecycle_stage)
                      for email, item in newest.items()}
        results = self.target.upsert_contacts(properties) if properties else {}
        reported_new = set()
        for item in work:
            if item.step_id in outcomes:
                continue
            email = contact_key(item.order)
            result = results[email]
            if result.error is not None:
                outcomes[item.step_id] = Outcome(item.step_id, "failed", error=result.error)
                continue
            self.ledger.bind("hubspot", "contact", email, result.contact_id)
            created = result.created and email not in reported_new
            reported_new.add(email)
            outcomes[item.step_id] = Outcome(item.step_id, "done", external_id=result.contact_id, created=created)
        return [outcomes[item.step_id] for item in work]
