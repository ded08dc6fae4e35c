"""The ``quickbooks.customer`` step: binding, then email, then display name, then create.

A whole batch is looked up at once, because one query per shopper was most
of the QuickBooks requests of a backfill (issue 9): the shoppers not yet
bound in the ledger are looked up with ``PrimaryEmailAddr IN (...)``, those
not found with ``DisplayName IN (...)``, and the disambiguated names with
one more ``IN`` (100 values per query, :func:`adapters.quickbooks.select_in`)
- two or three queries for a batch of 30 instead of about forty. If
QuickBooks refuses ``IN`` on a field (fault 4000/4001; ``IN`` on
``PrimaryEmailAddr`` is not confirmed in our notes), that field is looked up
with one ``=`` query per value from then on, logged once. Emails and names
compare case-insensitively, as QuickBooks' query does (notes §2.1).

Inactive customers are looked up too: they still own their DisplayName
(notes §1.1); one that is bound is made active again, since QuickBooks
refuses documents for an inactive customer. New customers of a batch are
created together through the batch endpoint, one per shopper. "Duplicate
Name Exists" (6240, either envelope casing) is resolved by finding the
owner and binding it, never by a second customer (peers.md pain point 3).
A name owned by a different person (both emails known and different) gets a
disambiguated name - whether the owner is already in QuickBooks or is
another new shopper of the same batch. The display name comes from
``quickbooks.display_name_template``.
"""

from __future__ import annotations

import logging

from adapters.quickbooks import DUPLICATE_NAME, quote, select_in
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

LOG = logging.getLogger("o2c.quickbooks")
QUERY_REFUSED = ("4000", "4001")  # notes §2.1: QueryParserError / QueryValidationError
ACTIVE_TOO = " AND Active IN (true, false)"  # inactive customers still own their name (notes §1.1)


def run(books: Books, kind: str, work: list[Work]) -> dict[int, Outcome]:
    """Look the batch's shoppers up together; create the missing ones together (one per shopper)."""
    outcomes: dict[int, Outcome] = {}
    shoppers: dict[str, list[Work]] = {}  # customer key -> the batch's orders of that shopper
    for item in work:
        key = customer_key(item.order)
        bound = books.ledger.binding("quickbooks", "customer", key)
        if bound:
            outcomes[item.step_id] = Outcome(item.step_id, "done", external_id=bound,
                                             response=f"already bound: Customer {bound}")
        else:
            shoppers.setdefault(key, []).append(item)
    try:
        found, names = _find(books, {key: items[0] for key, items in shoppers.items()})
    except StepError as exc:  # the lookup failed: every unbound shopper is retried
        outcomes.update({i.step_id: Outcome(i.step_id, "failed", error=exc) for s in shoppers.values() for i in s})
        return stamp(work, outcomes)
    pending: list[Pending] = []
    for key, items in shoppers.items():
        first = items[0]
        if key not in found:
            pending.append(_pending(books, first, key, names[key]))
            continue
        try:
            customer = _active(books, key, found[key])
        except StepError as exc:
            outcomes[first.step_id] = Outcome(first.step_id, "failed", error=exc)
            continue
        books.ledger.bind("quickbooks", "customer", key, customer["Id"], {"DisplayName": customer.get("DisplayName")})
        outcomes[first.step_id] = Outcome(first.step_id, "done", external_id=customer["Id"],
                                          note="found existing customer",
                                          response=f"found existing: Customer {customer['Id']}")
    outcomes.update(books.create_all(pending))
    for items in shoppers.values():  # the shopper's other orders of this batch follow the first
        for item in items[1:]:
            bound = books.ledger.binding("quickbooks", "customer", customer_key(item.order))
            outcomes[item.step_id] = Outcome(item.step_id, "done", external_id=bound, response=(
                f"bound in this batch for another order of the shopper: Customer {bound}")) if bound else Outcome(
                item.step_id, "failed", error=StepError("the shopper's customer could not be created in this batch",
                                                        what_to_do="nothing; it is retried"))
    return stamp(work, outcomes)


def _find(books: Books, shoppers: dict[str, Work]) -> tuple[dict[str, dict], dict[str, str]]:
    """``({key: existing customer}, {key: display name to create})`` for the batch's shoppers."""
    found: dict[str, dict] = {}
    emails = {key: item.order.customer.email.strip().lower() for key, item in shoppers.items()
              if item.order.customer.email}
    by_email = _by(_customers(books, "PrimaryEmailAddr", list(emails.values())), _email_of)
    found.update({key: by_email[email] for key, email in emails.items() if email in by_email})

    names = {key: display_name(item.order, books.settings.display_name_template)
             for key, item in shoppers.items() if key not in found}
    by_name = _by(_customers(books, "DisplayName", list(names.values())), _name_of)
    renamed: dict[str, str] = {}  # a different person owns the name: a disambiguated one
    claimed: dict[str, str] = {}  # name -> the new shopper of this batch who gets it
    for key, name in names.items():
        order = shoppers[key].order
        owner = by_name.get(name.casefold())
        if owner is not None and _same_person(owner, order):
            found[key] = owner
        elif owner is not None or (name.casefold() in claimed
                                   and not _same_person_orders(shoppers[claimed[name.casefold()]].order, order)):
            renamed[key] = disambiguated_name(name, order)
        else:
            # A second new shopper with this name who may be the same person (one has no email):
            # same name, so 6240 and its rescue bind them together, as before batching.
            claimed.setdefault(name.casefold(), key)
    if renamed:
        by_name = _by(_customers(books, "DisplayName", list(renamed.values())), _name_of)
        for key, name in renamed.items():
            names[key] = name
            if name.casefold() in by_name:
                found[key] = by_name[name.casefold()]
    return found, {key: name for key, name in names.items() if key not in found}


def _customers(books: Books, field: str, values: list[str]) -> list[dict]:
    """Customers (inactive too) whose ``field`` is one of ``values``: IN lists, else one ``=`` each."""
    if not values:
        return []
    if field not in books.refused_in:
        try:
            return select_in(books.target.query, "Customer", field, values, also=ACTIVE_TOO)
        except PermanentError as exc:
            if exc.code not in QUERY_REFUSED:
                raise
            books.refused_in.add(field)
            LOG.warning("QuickBooks refused `Customer WHERE %s IN (...)` (fault %s); looking customers up by one "
                        "%s per query from now on", field, exc.code, field)
    rows: list[dict] = []
    for value in dict.fromkeys(values):
        rows += books.target.query(f"SELECT * FROM Customer WHERE {field} = '{quote(value)}'{ACTIVE_TOO}"
                                   ).get("Customer", [])
    return rows


def _by(customers: list[dict], key_of) -> dict[str, dict]:
    """``{key: customer}``, the first QuickBooks answered for each key (as ``find_customer`` did)."""
    index: dict[str, dict] = {}
    for customer in customers:
        key = key_of(customer)
        if key:
            index.setdefault(key, customer)
    return index


def _email_of(customer: dict) -> str:
    return ((customer.get("PrimaryEmailAddr") or {}).get("Address") or "").strip().lower()


def _name_of(customer: dict) -> str:
    return (customer.get("DisplayName") or "").casefold()


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
    theirs = _email_of(customer)
    ours = (order.customer.email or "").strip().lower()
    return not theirs or not ours or theirs == ours


def _same_person_orders(first, second) -> bool:
    """Two new shoppers of one batch with one name: the same person unless both emails differ."""
    a, b = (first.customer.email or "").strip().lower(), (second.customer.email or "").strip().lower()
    return not a or not b or a == b
