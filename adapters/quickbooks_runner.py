"""Runs the ``quickbooks.*`` steps: customer, invoice or sales receipt, payments, refunds, void.

Each step follows the same named sequence (OCA's synchronizer): already
bound? -> (after an attempt whose answer was lost) probe the target -> map
-> create with a deterministic ``requestid`` (through the batch endpoint,
30 at a time) -> bind at once -> compare the totals. The binding,
committed right after the create, makes the effect exactly-once (DESIGN.md
guarantee 2); the ``requestid`` and the probe cover the window between the
create and the binding.

| step                          | module                                   |
|-------------------------------|------------------------------------------|
| ``quickbooks.customer``       | :mod:`adapters.quickbooks_customers`     |
| ``quickbooks.invoice`` / ``quickbooks.sales_receipt`` / ``quickbooks.void`` | :mod:`adapters.quickbooks_documents` |
| ``quickbooks.void`` of two or more orders (one batch call) | :mod:`adapters.quickbooks_voids` |
| ``quickbooks.payment:<txn>`` / ``quickbooks.refund:<id>`` | :mod:`adapters.quickbooks_payments` |

Recovery table (per item; the engine turns error types into step states):
| what happens                               | outcome                                            |
|--------------------------------------------|----------------------------------------------------|
| answer lost (crash, 5xx after the write)   | failed; next attempt probes DocNumber / PaymentRefNum and binds what it finds |
| 429 throttling                             | failed, retried after 60 s                         |
| 6240 duplicate name                        | the existing customer is found and bound           |
| 5010 stale SyncToken on void               | re-read; retried once if only our own writes changed it, else dead ``held_for_review`` |
| unknown SKU / tax code / account / currency | dead, ``what_to_do`` names the setting to fix      |
| total differs from the store's             | done, event ``total_mismatch`` + binding details (≤ 1 cent: rounding line if configured) |
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field

from adapters.quickbooks import BATCH_MAX, QuickBooksTarget
from connector.errors import PermanentError, StepError
from connector.events import error_answer, payload_hash
from connector.planner import kind_of
from connector.protocols import Outcome, Work
from mappings.quickbooks_documents import REQUEST_ID_NAMESPACE, customer_key, request_id
from mappings.quickbooks_money import GatewayRefs
from mappings.quickbooks_sales import TaxPolicy


@dataclass
class Pending:
    """One create waiting for the batch: the step, the object, and what to do with the answer."""

    work: Work
    entity: str
    body: dict
    request_id: str
    done: object  # callable(created: dict) -> Outcome
    rescue: object = None  # callable(error: StepError) -> Outcome, for errors with a known remedy (6240)


@dataclass
class Books:
    """What every step handler shares: the target, the ledger, settings and per-pass caches."""

    target: QuickBooksTarget
    ledger: object
    settings: object
    prefixes: dict[str, str]
    policy: TaxPolicy
    _home: list = field(default_factory=list)
    # What this QuickBooks company refused, so it is not asked again in this process: fields on
    # which an ``IN (...)`` query gave 4000/4001 (customers), and voids in a batch (voids).
    refused_in: set = field(default_factory=set)
    single_voids: bool = False

    def prefix(self, store: str) -> str:
        return self.prefixes.get(store, "")

    def home_currency(self) -> str | None:
        """The company's home currency, read once (Preferences.CurrencyPrefs.HomeCurrency)."""
        if not self._home:
            prefs = self.target.preferences().get("CurrencyPrefs") or {}
            self._home.append((prefs.get("HomeCurrency") or {}).get("value"))
        return self._home[0]

    def home_if_needed(self, order) -> str | None:
        return self.home_currency() if order.other_money is not None else None

    # -- names -> ids ------------------------------------------------------
    def named_id(self, entity: str, name: str, setting: str) -> str:
        """The id of the Account or PaymentMethod named ``name`` (cached in the ledger)."""
        kind = "account" if entity == "Account" else "payment_method"
        bound = self.ledger.binding("quickbooks", kind, name)
        if bound:
            return bound
        found = self.target.find_named(entity, name)
        if found is None:
            raise PermanentError(f"QuickBooks has no {entity} named '{name}'", system="quickbooks",
                                 code=f"unknown_{kind}",
                                 what_to_do=f"create it in QuickBooks or correct {setting}, then replay")
        self.ledger.bind("quickbooks", kind, name, found["Id"])
        return found["Id"]

    def gateway(self, gateway: str | None) -> GatewayRefs:
        """Payment method and accounts of a gateway from ``quickbooks.gateways`` (``*`` = default)."""
        config = self.settings.gateways.get(gateway or "") or self.settings.gateways.get("*")
        if config is None:
            return GatewayRefs()
        where = f"quickbooks.gateways.{gateway if gateway in self.settings.gateways else '*'}"
        return GatewayRefs(
            payment_method=self.named_id("PaymentMethod", config.payment_method, f"{where}.payment_method")
            if config.payment_method else None,
            deposit_account=self.named_id("Account", config.deposit_account, f"{where}.deposit_account")
            if config.deposit_account else None,
            refund_account=self.named_id("Account", config.refund_account, f"{where}.refund_account")
            if config.refund_account else None,
        )

    # -- the batch ---------------------------------------------------------
    def create_all(self, pending: list[Pending]) -> dict[int, Outcome]:
        """Create every pending object, 30 per batch call; bind each through its ``done``."""
        outcomes: dict[int, Outcome] = {}
        for start in range(0, len(pending), BATCH_MAX):
            chunk = pending[start:start + BATCH_MAX]
            if len(chunk) == 1:
                one = chunk[0]
                try:
                    results = {"b0": self.target.create(one.entity, one.body, one.request_id)}
                except StepError as exc:
                    results = {"b0": exc}
            else:
                # Deterministic for the same items, so a lost answer of the same batch is replayed;
                # a different batch after a crash is covered by the probe (attempts > 1).
                batch_id = str(uuid.uuid5(REQUEST_ID_NAMESPACE, "|".join(p.request_id for p in chunk)))
                items = [(f"b{i}", p.entity, p.body) for i, p in enumerate(chunk)]
                try:
                    results = self.target.batch(items, batch_id)
                except StepError as exc:
                    results = {f"b{i}": exc for i in range(len(chunk))}
            for i, item in enumerate(chunk):
                result = results[f"b{i}"]
                # What QuickBooks answered for this item (an object or a fault), for the events table.
                answer = summary(item.entity, result) if isinstance(result, dict) else error_answer(result)
                if answer and len(chunk) > 1:
                    answer += f" (batch {batch_id} b{i})"
                try:
                    if isinstance(result, StepError) and item.rescue is not None:
                        outcome = item.rescue(result)
                        if outcome.response is None:
                            found = f"{outcome.note or 'then found'}: {item.entity} {outcome.external_id}"
                            outcome.response = f"{answer}; {found}" if answer else found
                    elif isinstance(result, Exception):
                        raise result
                    else:
                        outcome = item.done(result)
                except StepError as exc:
                    outcome = Outcome(item.work.step_id, "failed", error=exc)
                outcome.payload_hash = outcome.payload_hash or payload_hash(item.body)
                outcome.request_id = outcome.request_id or item.request_id
                if outcome.response is None:
                    outcome.response = answer
                outcomes[item.work.step_id] = outcome
        return outcomes


def summary(entity: str, obj: dict) -> str:
    """A short line of what QuickBooks holds: ``Invoice 145 DocNumber SH-1001 TotalAmt 12.50``."""
    parts = [entity, str(obj.get("Id"))]
    if obj.get("DocNumber"):
        parts += ["DocNumber", str(obj["DocNumber"])]
    if obj.get("TotalAmt") is not None:
        parts += ["TotalAmt", str(obj["TotalAmt"])]
    return " ".join(parts)


def step_request_id(item: Work) -> str:
    """The deterministic ``requestid`` of the step's write: per shopper for customers, else per order and step."""
    order = item.order
    key = customer_key(order) if kind_of(item.step) == "quickbooks.customer" else order.order_key
    return request_id(key, item.step)


def stamp(work: list[Work], outcomes: dict[int, Outcome]) -> dict[int, Outcome]:
    """Give each outcome its step's request id (also when this attempt sent nothing: bound, found, refused)."""
    for item in work:
        outcome = outcomes.get(item.step_id)
        if outcome is not None and outcome.request_id is None:
            outcome.request_id = step_request_id(item)
    return outcomes


class QuickBooksRunner:
    system = "quickbooks"
    steps = ("quickbooks.customer", "quickbooks.invoice", "quickbooks.sales_receipt", "quickbooks.payment",
             "quickbooks.refund", "quickbooks.void")
    batch_size = 30

    def __init__(self, target: QuickBooksTarget, ledger, settings, doc_prefixes: dict[str, str]):
        self.target = target
        self.ledger = ledger
        self.settings = settings
        self.books = Books(target, ledger, settings, doc_prefixes, TaxPolicy.from_settings(settings))

    @property
    def calls(self) -> int:
        return self.target.calls

    def run(self, step: str, work: list[Work]) -> list[Outcome]:
        """Run one batch of due steps of one kind; one outcome per item, in order."""
        from adapters import (
            quickbooks_customers,
            quickbooks_documents,
            quickbooks_payments,
            quickbooks_voids,
        )
        kind = kind_of(step)
        handlers = {
            "quickbooks.customer": quickbooks_customers.run,
            "quickbooks.invoice": quickbooks_documents.run_documents,
            "quickbooks.sales_receipt": quickbooks_documents.run_documents,
            "quickbooks.void": quickbooks_voids.run_voids,
            "quickbooks.payment": quickbooks_payments.run_payments,
            "quickbooks.refund": quickbooks_payments.run_refunds,
        }
        try:
            outcomes = handlers[kind](self.books, kind, work)
        except StepError as exc:  # a failure shared by the whole batch (item lookup, outage)
            return [Outcome(w.step_id, "failed", error=exc) for w in work]
        return [outcomes.get(w.step_id) or Outcome(w.step_id, "failed", error=StepError(
            f"{w.step} was not run", what_to_do="report this bug")) for w in work]
