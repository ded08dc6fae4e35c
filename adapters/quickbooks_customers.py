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
another new shopper of the same batch (compared with every shopper of the
batch who took the name, not only the first). A 6240 rescue compares emails
too: a name taken meanwhile by someone else is created again under the
disambiguated name instead of being bound to a stranger. The display name
comes from ``quickbooks.display_name_template``.

Find-then-create is a race between workers: two that look the same email up
at once both find nothing and both create. So the lookups and creates of a
batch run under a lock per QuickBooks company, held across processes and
machines (:func:`connector.job_locks.waiting_lock`, issue 10); a batch whose
shoppers are all bound already takes no lock.
"""

from __future__ import annotations

import logging

from adapters.quickbooks import DUPLICATE_NAME, quote, select_in
from adapters.quickbooks_runner import Books, Pending, stamp
from connector.errors import PermanentError, RetryableError, StepError
from connector.job_locks import waiting_lock
from connector.protocols import Outcome, Work
from mappings.quickbooks_documents import (
    customer_body,
    customer_key,
    disambiguated_name,
    display_name,
    request_id,
)

LOG = logging.getLogger("o2c.quickbooks")
LOCK_WAIT_SECONDS = 60.0  # another worker's batch takes a few requests; past this, retry the batch later
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
    if shoppers:
        with waiting_lock(books.ledger, f"quickbooks-customers:{books.target.realm}",
                          timeout=LOCK_WAIT_SECONDS) as held:
            if held:
                outcomes.update(_find_or_create(books, shoppers))
            else:
                busy = RetryableError("another worker has been creating QuickBooks customers for over a minute; "
                                      "these shoppers are looked up again later", system="quickbooks",
                                      what_to_do="nothing; if it lasts, check `o2c status` for a stuck worker")
                outcomes.update({i.step_id: Outcome(i.step_id, "failed", error=busy)
                                 for items in shoppers.values() for i in items})
    return stamp(work, outcomes)


def _find_or_create(books: Books, shoppers: dict[str, list[Work]]) -> dict[int, Outcome]:
    """Outcomes for the unbound shoppers' orders: found in QuickBooks, or created (under the lock)."""
    outcomes: dict[int, Outcome] = {}
    try:
        found, names, followers = _find(books, {key: items[0] for key, items in shoppers.items()})
    except StepError as exc:  # the lookup failed: every unbound shopper is retried
        return {i.step_id: Outcome(i.step_id, "failed", error=exc) for s in shoppers.values() for i in s}
    pending: list[Pending] = []
    for key, items in shoppers.items():
        first = items[0]
        if key in followers:
            continue  # bound below, to the customer of the namesake it is taken to be
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
    for key, leader in followers.items():  # a namesake who may be the same person shares the customer
        bound = books.ledger.binding("quickbooks", "customer", leader)
        first = shoppers[key][0]
        if bound:
            books.ledger.bind("quickbooks", "customer", key, bound, {"DisplayName": names.get(leader)})
            outcomes[first.step_id] = Outcome(first.step_id, "done", external_id=bound, response=(
                f"bound in this batch to a namesake's new customer (no email tells them apart): Customer {bound}"))
        else:
            outcomes[first.step_id] = Outcome(first.step_id, "failed", error=StepError(
                "the namesake's customer could not be created in this batch", what_to_do="nothing; it is retried"))
    for items in shoppers.values():  # the shopper's other orders of this batch follow the first
        for item in items[1:]:
            bound = books.ledger.binding("quickbooks", "customer", customer_key(item.order))
            outcomes[item.step_id] = Outcome(item.step_id, "done", external_id=bound, response=(
                f"bound in this batch for another order of the shopper: Customer {bound}")) if bound else Outcome(
                item.step_id, "failed", error=StepError("the shopper's customer could not be created in this batch",
                                                        what_to_do="nothing; it is retried"))
    return outcomes


def _find(books: Books, shoppers: dict[str, Work]) -> tuple[dict[str, dict], dict[str, str], dict[str, str]]:
    """``({key: existing customer}, {key: display name to create}, {key: namesake key it follows})``.

    A follower is a new shopper of this batch who takes a name another new shopper of the batch
    takes first, and may be the same person (no two emails to tell them apart): one customer for
    both, as QuickBooks' one-name-one-customer rule would make it anyway.
    """
    found: dict[str, dict] = {}
    emails = {key: _email(item.order) for key, item in shoppers.items()}
    by_email = _by(_customers(books, "PrimaryEmailAddr", [e for e in emails.values() if e]), _email_of)
    found.update({key: by_email[email] for key, email in emails.items() if email in by_email})

    names = {key: display_name(item.order, books.settings.display_name_template)
             for key, item in shoppers.items() if key not in found}
    by_name = _by(_customers(books, "DisplayName", list(names.values())), _name_of)
    renamed: dict[str, str] = {}  # a different person owns the name: a disambiguated one
    takers: dict[str, list[str]] = {}  # name -> the new shoppers of this batch taken to be its one person
    person: dict[str, str] = {}  # name -> that person's email ("" while none of them has one)
    for key, name in names.items():
        order, email, folded = shoppers[key].order, emails[key], name.casefold()
        owner = by_name.get(folded)
        if owner is not None:
            if _same_person(owner, order):
                found[key] = owner
            else:
                renamed[key] = disambiguated_name(name, order)
        elif email and person.get(folded) and email != person[folded]:
            renamed[key] = disambiguated_name(name, order)  # the name's person so far has another email
        else:
            takers.setdefault(folded, []).append(key)
            person[folded] = person.get(folded) or email
    followers: dict[str, str] = {}
    for keys in takers.values():  # the one with an email creates the customer, so it carries the email
        creator = next((k for k in keys if emails[k]), keys[0])
        followers.update({k: creator for k in keys if k != creator})
    if renamed:
        by_name = _by(_customers(books, "DisplayName", list(renamed.values())), _name_of)
        for key, name in renamed.items():
            names[key] = name
            owner = by_name.get(name.casefold())
            if owner is not None and _same_person(owner, shoppers[key].order):
                found[key] = owner
            # else: created; if another person owns even this name, the 6240 rescue says so
    create = {key: name for key, name in names.items() if key not in found and key not in followers}
    return found, create, followers


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
        # 6240: the name exists after all (an inactive customer, a vendor, a race): find and bind it -
        # unless it is someone else's (both emails known and different): then the disambiguated name.
        owner = _owner_of(books, name, exc)
        if _same_person(owner, item.order):
            return _bind_found(books, item, key, owner, name, "bound after duplicate name")
        other = disambiguated_name(name, item.order)
        if other.casefold() == name.casefold():
            raise PermanentError(f"QuickBooks customer '{name}' belongs to {_email_of(owner)}, not to this "
                                 f"shopper ({_email(item.order)})", system="quickbooks", code=exc.code,
                                 what_to_do="rename one of them in QuickBooks or change "
                                            "quickbooks.display_name_template; then replay") from exc
        try:
            created = books.target.create("Customer", customer_body(item.order, other),
                                          request_id(key, "quickbooks.customer.renamed"))
        except StepError as again:
            if again.code != str(DUPLICATE_NAME):
                raise
            owner = _owner_of(books, other, again)
            if not _same_person(owner, item.order):
                raise PermanentError(f"QuickBooks customers '{name}' and '{other}' both belong to other "
                                     "people", system="quickbooks", code=again.code,
                                     what_to_do="rename one of them in QuickBooks or change "
                                                "quickbooks.display_name_template; then replay") from again
            return _bind_found(books, item, key, owner, other, "bound after duplicate name")
        books.ledger.bind("quickbooks", "customer", key, created["Id"], {"DisplayName": other})
        return Outcome(item.step_id, "done", external_id=created["Id"], created=True,
                       note=f"created as '{other}': '{name}' belongs to another person")
    return Pending(item, "Customer", customer_body(item.order, name), request_id(key, "quickbooks.customer"),
                   done, rescue)


def _owner_of(books: Books, name: str, exc: StepError) -> dict:
    """The customer QuickBooks says owns ``name`` (6240); a vendor or employee owning it is the user's to fix."""
    owner = books.target.find_customer(display_name=name)
    if owner is None:
        raise PermanentError(
            f"QuickBooks says the name '{name}' is taken, but no customer has it (a vendor or employee "
            "does)", system="quickbooks", code=exc.code,
            what_to_do="rename the vendor or employee in QuickBooks, or change "
                       "quickbooks.display_name_template; then replay") from exc
    return owner


def _bind_found(books: Books, item: Work, key: str, owner: dict, name: str, note: str) -> Outcome:
    owner = _active(books, key, owner)
    books.ledger.bind("quickbooks", "customer", key, owner["Id"], {"DisplayName": name})
    return Outcome(item.step_id, "done", external_id=owner["Id"], note=note)


def _active(books: Books, key: str, customer: dict) -> dict:
    """Reactivate an inactive customer we bind: QuickBooks refuses documents for inactive ones (2500)."""
    if customer.get("Active", True) in (True, "true"):
        return customer
    return books.target.update("Customer", {"Id": customer["Id"], "SyncToken": customer["SyncToken"], "sparse": True,
                                            "Active": True}, request_id(key, "quickbooks.customer.reactivate"))


def _email(order) -> str:
    return (order.customer.email or "").strip().lower()


def _same_person(customer: dict, order) -> bool:
    """A customer found by name is the shopper unless both have emails and they differ."""
    theirs, ours = _email_of(customer), _email(order)
    return not theirs or not ours or theirs == ours
