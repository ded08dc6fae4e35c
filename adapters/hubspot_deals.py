"""The ``hubspot.deal`` and ``hubspot.deal_sync:<n>`` steps.

``hubspot.deal`` (per batch of up to 100 orders), as named steps:
1. make sure the unique key properties exist (created once, remembered in the
   ledger's bindings: ``hubspot/property/deals.o2c_order_key``);
2. check the configured pipeline and stage ids against ``GET /crm/v3/pipelines/deals``
   (once per run); an order whose status maps to a wrong id is dead, naming it;
3. upsert the deals by the order key (one deal per order, never two: notes §2.1);
4. upsert the line items by ``<order key>:<line id>`` (a retry updates, never duplicates);
5. associate deal -> line item (19) and deal -> contact (3) in v4 batches (notes §2.4).

``hubspot.deal_sync:<n>`` (planned again after each new QuickBooks booking step)
updates the deal by its order key with the QuickBooks document number, balance
and status read from the ledger's QuickBooks bindings, and brings the deal's
amount and stage up to date with the latest order snapshot (a paid-later order
moves to its paid stage).

Recovery table:
| what happens                                    | outcome                                             |
|-------------------------------------------------|-----------------------------------------------------|
| a configured stage id is not in the pipeline    | dead: names the setting and the pipeline's stage ids |
| the pipeline cannot be read (403, no scope)     | not checked here; HubSpot's 207 per deal decides      |
| one deal or line item refused in a 207          | that order dead with HubSpot's message; others done  |
| 409 on the whole batch                          | dead for each order: a duplicate holds the key        |
| 429/5xx after in-request retries                | failed, retried on the ledger's schedule              |
| line items written, association failed          | failed; the retry re-upserts (idempotent) and links   |
| no QuickBooks document for the order            | deal_sync skipped, with the reason                    |
"""

from __future__ import annotations

from connector.errors import PermanentError, SkippableError
from connector.events import error_answer, payload_hash
from connector.protocols import Outcome, Work
from adapters.hubspot import DEAL_TO_CONTACT, DEAL_TO_LINE_ITEM, HubSpotTarget
from mappings.hubspot_contact import contact_key
from mappings.hubspot_deal import booking_properties, deal_properties, line_items, stage_key

# (object type, property, label, unique, number) the write-back step needs.
BOOKING_PROPERTIES = (
    ("deals", "o2c_qbo_doc_number", "QuickBooks document number", False, False),
    ("deals", "o2c_qbo_balance", "QuickBooks balance", False, True),
    ("deals", "o2c_qbo_status", "QuickBooks status", False, False),
)
DOCUMENT_KINDS = ("invoice", "sales_receipt")


class DealSteps:
    """Deals, line items, associations and the QuickBooks write-back for one HubSpot account."""

    def __init__(self, target: HubSpotTarget, ledger, settings):
        self.target = target
        self.ledger = ledger
        self.settings = settings
        self.stages = settings.stage_map()
        self._stage_errors: dict[str, PermanentError] | None = None  # stage key -> why its id is wrong

    # -- preparation ------------------------------------------------------------
    def _ensure(self, object_type: str, name: str, label: str, unique: bool = False, number: bool = False) -> None:
        """Create a custom property once; the ledger remembers it so later runs spend no call."""
        key = f"{object_type}.{name}"
        if self.ledger.binding("hubspot", "property", key):
            return
        self.target.ensure_property(object_type, name, label, unique=unique, number=number)
        self.ledger.bind("hubspot", "property", key, name, {"unique": unique})

    def _check_stages(self) -> dict[str, PermanentError]:
        """Which stage keys map to an id that is not a stage of the configured pipeline."""
        if self._stage_errors is not None:
            return self._stage_errors
        pipeline = self.settings.pipeline
        try:
            pipelines = self.target.deal_pipelines()
        except Exception as exc:
            if getattr(exc, "status", None) == 403:  # no pipelines scope: HubSpot checks each deal (207)
                self._stage_errors = {}
                return self._stage_errors
            raise
        errors: dict[str, PermanentError] = {}
        if pipeline not in pipelines:
            error = PermanentError(
                f"hubspot.pipeline '{pipeline}' is not a deal pipeline of this HubSpot account "
                f"(its pipelines: {', '.join(pipelines) or 'none'})", system="hubspot", code="unknown_pipeline",
                what_to_do="set hubspot.pipeline to one of those ids in the config, then replay")
            errors = {key: error for key in self.stages}
        else:
            allowed = pipelines[pipeline]
            for key, stage in self.stages.items():
                if stage not in allowed:
                    errors[key] = PermanentError(
                        f"hubspot.deal_stages.{key} is '{stage}', which is not a stage of pipeline '{pipeline}' "
                        f"(its stages: {', '.join(allowed)})", system="hubspot", code="unknown_stage",
                        what_to_do=f"set hubspot.deal_stages.{key} to one of those stage ids, then replay")
        self._stage_errors = errors
        return errors

    # -- hubspot.deal -----------------------------------------------------------------
    def run_deals(self, work: list[Work]) -> list[Outcome]:
        key_prop, line_prop = self.settings.order_key_property, self.settings.line_key_property
        try:
            self._ensure("deals", key_prop, "Order key (o2c)", unique=True)
            self._ensure("line_items", line_prop, "Order line key (o2c)", unique=True)
            stage_errors = self._check_stages()
        except Exception as exc:  # classified by the adapter
            return [Outcome(item.step_id, "failed", error=exc) for item in work]

        errors: dict[int, Exception] = {}
        deals: dict[str, dict[str, str]] = {}
        for item in work:
            order = item.order
            problem = stage_errors.get(stage_key(order, self.stages))
            if problem is not None:
                errors[item.step_id] = problem
                continue
            deals[order.order_key] = deal_properties(order, stages=self.stages, pipeline=self.settings.pipeline,
                                                     key_property=key_prop,
                                                     name_template=self.settings.deal_name_template)
        results = self.target.upsert("deals", deals, key_prop) if deals else {}
        for key, result in results.items():
            if result.error is None:
                self.ledger.bind("hubspot", "deal", key, result.object_id)

        # Line items of the orders whose deal was written, in batches of 100 across orders.
        lines: dict[str, dict[str, str]] = {}
        owner: dict[str, str] = {}  # line key -> order key
        for item in work:
            result = results.get(item.order.order_key)
            if item.step_id in errors or result is None or result.error is not None:
                continue
            for key, props in line_items(item.order, line_prop).items():
                lines[key] = props
                owner[key] = item.order.order_key
        line_results = self.target.upsert("line_items", lines, line_prop) if lines else {}
        line_errors = {owner[k]: r.error for k, r in line_results.items() if r.error is not None}

        # Associations: deal -> line item and deal -> contact, only for what was written.
        item_pairs, contact_pairs = [], []
        for key, result in line_results.items():
            deal = results[owner[key]]
            if result.error is None:
                item_pairs.append((deal.object_id, result.object_id))
        for item in work:
            result = results.get(item.order.order_key)
            if result is None or result.error is not None or item.order.order_key in line_errors:
                continue
            contact_id = self._contact_of(item)
            if contact_id:
                contact_pairs.append((result.object_id, contact_id))
        link_errors: dict[str, Exception] = {}  # deal id -> first association error
        for to_type, type_id, pairs in (("line_items", DEAL_TO_LINE_ITEM, item_pairs),
                                        ("contacts", DEAL_TO_CONTACT, contact_pairs)):
            if pairs:
                for (deal_id, _), error in self.target.associate("deals", to_type, type_id, pairs).items():
                    if error is not None:
                        link_errors.setdefault(deal_id, error)

        outcomes = []
        for item in work:
            key = item.order.order_key
            result = results.get(key)
            error = errors.get(item.step_id) or (result.error if result else None) or line_errors.get(key) \
                or (link_errors.get(result.object_id) if result else None)
            sent, answer = self._deal_answer(key, deals, lines, owner, result, line_errors, link_errors)
            if error is not None:
                outcomes.append(Outcome(item.step_id, "failed", error=error, payload_hash=sent, response=answer))
            else:
                outcomes.append(Outcome(item.step_id, "done", external_id=result.object_id, created=result.created,
                                        payload_hash=sent, response=answer))
        return outcomes

    @staticmethod
    def _deal_answer(key, deals, lines, owner, result, line_errors, link_errors) -> tuple[str | None, str | None]:
        """Hash of what was sent for one order (deal and line items) and a line of what HubSpot answered."""
        if key not in deals:
            return None, None  # refused before sending (a wrong stage id)
        own = {line_key: lines[line_key] for line_key, order_key in owner.items() if order_key == key}
        sent = payload_hash({"deal": deals[key], "line_items": own})
        if result is None:
            return sent, None
        if result.error is not None:
            return sent, error_answer(result.error)
        parts = [f"deal {result.object_id} {'created' if result.created else 'updated'}",
                 f"{len(own)} line item{'' if len(own) == 1 else 's'}"]
        if key in line_errors:
            parts.append(f"line items refused: {error_answer(line_errors[key]) or 'no answer'}")
        elif result.object_id in link_errors:
            parts.append(f"associations failed: {error_answer(link_errors[result.object_id]) or 'no answer'}")
        else:
            parts.append("associations ok")
        return sent, ", ".join(parts)

    def _contact_of(self, item: Work) -> str | None:
        """The contact bound for this order (by email or matched by phone), if any."""
        bound = self.ledger.binding("hubspot", "order_contact", item.order.order_key)
        if bound:
            return bound
        email = contact_key(item.order)
        return self.ledger.binding("hubspot", "contact", email) if email else None

    # -- hubspot.deal_sync:<n> ---------------------------------------------------------
    def run_sync(self, work: list[Work]) -> list[Outcome]:
        key_prop = self.settings.order_key_property
        try:
            for object_type, name, label, unique, number in BOOKING_PROPERTIES:
                self._ensure(object_type, name, label, unique, number)
        except Exception as exc:
            return [Outcome(item.step_id, "failed", error=exc) for item in work]
        outcomes: dict[int, Outcome] = {}
        updates: dict[str, dict[str, str]] = {}
        for item in work:
            order = item.order
            booking = self._booking(order.order_key)
            if booking is None:
                outcomes[item.step_id] = Outcome(item.step_id, "skipped", error=SkippableError(
                    f"order {order.name} has no QuickBooks invoice or sales receipt to write back "
                    "(its booking step was skipped)", system="hubspot"))
                continue
            kind, details = booking
            props = deal_properties(order, stages=self.stages, pipeline=self.settings.pipeline, key_property=key_prop,
                                    name_template=self.settings.deal_name_template)
            props = {k: props[k] for k in ("amount", "deal_currency_code", "dealstage")}
            props.update(booking_properties(kind, details, voided=self._voided(order.order_key, details)))
            updates[order.order_key] = props
        results = self.target.update("deals", updates, key_prop) if updates else {}
        for item in work:
            if item.step_id in outcomes:
                continue
            result = results[item.order.order_key]
            sent = payload_hash(updates[item.order.order_key])
            if result.error is not None:
                outcomes[item.step_id] = Outcome(item.step_id, "failed", error=result.error, payload_hash=sent,
                                                 response=error_answer(result.error))
            else:
                props = updates[item.order.order_key]
                outcomes[item.step_id] = Outcome(
                    item.step_id, "done", external_id=result.object_id, payload_hash=sent,
                    response=f"deal {result.object_id} updated: QuickBooks {props.get('o2c_qbo_doc_number')} "
                             f"{props.get('o2c_qbo_status')}, stage {props.get('dealstage')}")
        return [outcomes[item.step_id] for item in work]

    def _booking(self, order_key: str) -> tuple[str, dict] | None:
        for kind in DOCUMENT_KINDS:
            if self.ledger.binding("quickbooks", kind, order_key):
                return kind, self.ledger.binding_details("quickbooks", kind, order_key) or {}
        return None

    def _voided(self, order_key: str, details: dict) -> bool:
        """Voided in QuickBooks: the void step bound it, or the document's details say so."""
        return bool(self.ledger.binding("quickbooks", "void", order_key)) or \
            str(details.get("Status", details.get("status", ""))).lower() == "voided" or bool(details.get("Voided"))
