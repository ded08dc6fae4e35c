"""The ``quickbooks.customer`` step: binding, then email, then display name, then create.

Inactive customers are looked up too: they still own their DisplayName
(notes §1.1); one that is bound is made active again, since QuickBooks
refuses documents for an inactive customer. New customers of a batch are
created together through the batch endpoint, one per shopper. "Duplicate Name Exists" (6240, either envelope casing) is
resolved by finding the owner and binding it, never by a second customer
(peers.md pain point 3). A name owned by a different person (both emails
known and different) gets a disambiguated name. The display name comes
from ``quickbooks.display_name_template``.
"""

from __future__ import annotations

from adapters.quickbooks import DUPLICATE_NAME
from adapters.quickbooks_runner import Books, Pending, stamp
from connector.errors import PermanentError, StepError
from connector.protocols import Outcome, Work
from mappings.quickbooks_documents import (
    customer_body,
    customer_key,
    disambiguated_name,
    display_name,
    request_id,
)


def run(books: Books, kind: str, work: list[Work]) -> dict[int, Outcome]:
    """Look each customer up; create the missing ones together in batch calls (one per shopper)."""
    outcomes: dict[int, Outcome] = {}
    pending: dict[str, Pending] = {}
    waiting: list[tuple[Work, str]] = []  # more orders of a shopper whose create is pending
    for item in work:
        try:
            found = _lookup(books, item)
        except StepError as exc:
            outcomes[item.step_id] = Outcome(item.step_id, "failed", error=exc)
            continue
        if isinstance(found, Outcome):
            outcomes[item.step_id] = found
            continue
        key, name = found
        if key in pending:
            waiting.append((item, key))
        else:
            pending[key] = _pending(books, item, key, name)
    outcomes.update(books.create_all(list(pending.values())))
    for item, key in waiting:
        bound = books.ledger.binding("quickbooks", "customer", key)
        outcomes[item.step_id] = Outcome(item.step_id, "done", external_id=bound, response=(
            f"bound in this batch for another order of the shopper: Customer {bound}")) if bound else Outcome(
            item.step_id, "failed", error=StepError("the shopper's customer could not be created in this batch",
                                                    what_to_do="nothing; it is retried"))
    return stamp(work, outcomes)


def _lookup(books: Books, item: Work):
    """The outcome when the customer is bound or found; else ``(key, display name)`` to create."""
    order, target, ledger = item.order, books.target, books.ledger
    key = customer_key(order)
    bound = ledger.binding("quickbooks", "customer", key)
    if bound:
        return Outcome(item.step_id, "done", external_id=bound, response=f"already bound: Customer {bound}")
    found = target.find_customer(email=order.customer.email) if order.customer.email else None
    name = display_name(order, books.settings.display_name_template)
    if found is None:
        same_name = target.find_customer(display_name=name)
        if same_name is not None and _same_person(same_name, order):
            found = same_name
        elif same_name is not None:
            name = disambiguated_name(name, order)  # a different person already owns the name
            found = target.find_customer(display_name=name)
    if found is not None:
        found = _active(books, key, found)
        ledger.bind("quickbooks", "customer", key, found["Id"], {"DisplayName": found.get("DisplayName")})
        return Outcome(item.step_id, "done", external_id=found["Id"], note="found existing customer",
                       response=f"found existing: Customer {found['Id']}")
    return key, name


def _pending(books: Books, item: Work, key: str, name: str) -> Pending:
    def done(created: dict) -> Outcome:
        books.ledger.bind("quickbooks", "customer", key, created["Id"], {"DisplayName": name})
        return Outcome(item.step_id, "done", external_id=created["Id"], created=True)

    def rescue(exc: StepError) -> Outcome:
        if exc.code != str(DUPLICATE_NAME):
            raise exc
        # 6240: the name exists after all (an inactive customer, a vendor, a race): find and bind it.
        found = books.target.find_customer(display_name=name)
        if found is None:
            raise PermanentError(
                f"QuickBooks says the name '{name}' is taken, but no customer has it (a vendor or employee "
                "does)", system="quickbooks", code=exc.code,
                what_to_do="rename the vendor or employee in QuickBooks, or change "
                           "quickbooks.display_name_template; then replay") from exc
        found = _active(books, key, found)
        books.ledger.bind("quickbooks", "customer", key, found["Id"], {"DisplayName": name})
        return Outcome(item.step_id, "done", external_id=found["Id"], note="bound after duplicate name")
    return Pending(item, "Customer", customer_body(item.order, name), request_id(key, "quickbooks.customer"),
                   done, rescue)


def _active(books: Books, key: str, customer: dict) -> dict:
    """Reactivate an inactive customer we bind: QuickBooks refuses documents for inactive ones (2500)."""
    if customer.get("Active", True) in (True, "true"):
        return customer
    return books.target.update("Customer", {"Id": customer["Id"], "SyncToken": customer["SyncToken"], "sparse": True,
                                            "Active": True}, request_id(key, "quickbooks.customer.reactivate"))


def _same_person(customer: dict, order) -> bool:
    """A customer found by name is the shopper unless both have emails and they differ."""
    theirs = ((customer.get("PrimaryEmailAddr") or {}).get("Address") or "").lower()
    ours = (order.customer.email or "").lower()
    return not theirs or not ours or theirs == ours
