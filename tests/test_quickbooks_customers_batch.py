"""Customer lookups for a whole batch: a few ``IN (...)`` queries, the same bindings as one by one.

The ``quickbooks.customer`` step runs straight on the QuickBooks runner against the sandbox,
with a batch of 30 orders whose shoppers meet every lookup rule (found by email, inactive, found
by name, name owned by another person, two new namesakes, two orders of one shopper, a guest).
The emulator's request counters say how many queries it cost.
"""

from __future__ import annotations

import logging
import threading
from collections import Counter
from datetime import datetime, timezone

import pytest

from adapters.quickbooks import classify
from connector.composition import build_runner
from connector.config import load_config
from connector.demo import write_config
from connector.ledger import Ledger
from connector.model import Customer, Money, Order
from connector.protocols import Work
from sandbox.seed import REALM, seed

NOW = datetime(2026, 11, 1, 12, 0, tzinfo=timezone.utc)
QUERY = "POST /v3/company/{realm}/query"


def shopper_order(n: int, email: str | None, first: str, last: str) -> Order:
    return Order(store="demo-shop", system="shopify", source_order_id=str(9000 + n), name=f"#{9000 + n}",
                 currency="USD", created_at=NOW, updated_at=NOW,
                 customer=Customer(email=email, first_name=first, last_name=last), lines=(),
                 total=Money.of("0", "USD"))


def batch_of_30() -> list[Order]:
    orders = [shopper_order(n, f"shopper{n}@example.com", f"First{n}", f"Last{n}") for n in range(30)]
    orders[6] = shopper_order(6, "twin.a@example.com", "Twin", "Name")  # two new namesakes
    orders[7] = shopper_order(7, "twin.b@example.com", "Twin", "Name")
    orders[9] = shopper_order(9, "SHOPPER8@example.com", "First8", "Last8")  # shopper 8's second order
    orders[10] = shopper_order(10, None, "Guest", "Ten")
    return orders


EXISTING = {"Customer": [
    {"DisplayName": "Not The Shop Name", "PrimaryEmailAddr": {"Address": "SHOPPER0@EXAMPLE.COM"}},  # 0: email
    {"DisplayName": "Old Account", "PrimaryEmailAddr": {"Address": "shopper1@example.com"}, "Active": False},
    {"DisplayName": "First2 Last2"},  # 2: by name, no email on either side to tell them apart
    {"DisplayName": "First3 Last3", "PrimaryEmailAddr": {"Address": "someone.else@example.com"}},  # 3: not them
    {"DisplayName": "First4 Last4", "PrimaryEmailAddr": {"Address": "other4@example.com"}},
    {"DisplayName": "First4 Last4 (shopper4@example.com)"},  # 4: the disambiguated name exists
    {"DisplayName": "First5 Last5", "Active": False},  # 5: inactive owner of the name
]}


@pytest.fixture
def runner(sandbox, tmp_path):
    settings = load_config(write_config(tmp_path, seed(sandbox.urls, orders=0)))
    ledger = Ledger(settings.ledger_path)
    yield build_runner(settings, ledger, "quickbooks")
    ledger.close()


def counts(sandbox) -> dict[str, int]:
    by = sandbox.control("quickbooks", "GET", "counters")["by_endpoint"]
    return {endpoint: row["total"] for endpoint, row in by.items() if endpoint.startswith(("POST /v3", "GET /v3"))}


def customer_step(runner, orders: list[Order], first_id: int = 1):
    work = [Work(first_id + i, "quickbooks.customer", order, None, 1) for i, order in enumerate(orders)]
    return runner.run("quickbooks.customer", work)


def customers(sandbox) -> dict[str, dict]:
    return {c["DisplayName"]: c for c in sandbox.state("quickbooks")["companies"][REALM]["Customer"]}


def test_a_batch_of_30_shoppers_is_looked_up_in_three_queries_and_binds_the_right_customers(sandbox, runner):
    existing = {c["DisplayName"]: c["Id"] for c in
                sandbox.control("quickbooks", "POST", f"companies/{REALM}/seed", json=EXISTING)["Customer"]}
    before = counts(sandbox)
    outcomes = customer_step(runner, batch_of_30())
    after = counts(sandbox)
    spent = {k: v - before.get(k, 0) for k, v in after.items() if v != before.get(k, 0)}
    # By email, then by name, then the disambiguated names; one batch creates the rest; two
    # inactive customers are made active again.
    assert spent == {QUERY: 3, "POST /v3/company/{realm}/batch": 1, "POST /v3/company/{realm}/customer": 2}, spent

    assert [o.state for o in outcomes] == ["done"] * 30, [(o.state, o.error) for o in outcomes]
    bound = [o.external_id for o in outcomes]
    now = customers(sandbox)
    assert bound[0] == existing["Not The Shop Name"]
    assert bound[1] == existing["Old Account"] and now["Old Account"]["Active"] is True
    assert bound[2] == existing["First2 Last2"]
    assert bound[3] == now["First3 Last3 (shopper3@example.com)"]["Id"] != existing["First3 Last3"]
    assert bound[4] == existing["First4 Last4 (shopper4@example.com)"]
    assert bound[5] == existing["First5 Last5"] and now["First5 Last5"]["Active"] is True
    assert {bound[6], bound[7]} == {now["Twin Name"]["Id"], now["Twin Name (twin.b@example.com)"]["Id"]}
    assert bound[8] == bound[9] == now["First8 Last8"]["Id"]
    assert bound[10] == now["Guest Ten"]["Id"]
    assert bound[11] == now["First11 Last11"]["Id"]
    assert len(now) == len(EXISTING["Customer"]) + 30 - 5 - 1  # found: 0-2, 4, 5; 9 is 8; the rest new


def test_a_second_batch_of_the_same_shoppers_asks_quickbooks_nothing(sandbox, runner):
    customer_step(runner, batch_of_30())
    before = counts(sandbox)
    outcomes = customer_step(runner, batch_of_30(), first_id=100)
    assert counts(sandbox) == before
    assert all(o.state == "done" and o.response.startswith("already bound") for o in outcomes)


def test_in_refused_by_quickbooks_falls_back_to_one_query_per_email_and_logs_it_once(sandbox, runner, monkeypatch,
                                                                                     caplog):
    existing = sandbox.control("quickbooks", "POST", f"companies/{REALM}/seed", json=EXISTING)["Customer"]
    real = runner.target.query

    def query(sql: str) -> dict:
        if "PrimaryEmailAddr IN" in sql:
            raise classify(4001, "Invalid query", "QueryValidationError: IN on PrimaryEmailAddr", 400)
        return real(sql)
    monkeypatch.setattr(runner.target, "query", query)
    orders = batch_of_30()
    before = counts(sandbox)
    with caplog.at_level(logging.WARNING, logger="o2c.quickbooks"):
        first = customer_step(runner, orders[:15])
        second = customer_step(runner, orders[15:], first_id=100)
    emails = len({o.customer.email.lower() for o in orders if o.customer.email})
    # One refused IN, then one query per email; the names are still looked up with IN.
    assert counts(sandbox)[QUERY] - before.get(QUERY, 0) == emails + 2 + 1
    assert len([r for r in caplog.records if "PrimaryEmailAddr" in r.getMessage()]) == 1
    assert [o.state for o in first + second] == ["done"] * 30
    assert first[0].external_id == existing[0]["Id"] and first[1].external_id == existing[1]["Id"]


# -- namesakes: never bound to a customer of another email (the scale-out run found these) -------------
def emails_of_bound(sandbox, outcomes) -> dict[str, str]:
    """{customer id: its email} for the customers the outcomes bound."""
    by_id = {c["Id"]: (c.get("PrimaryEmailAddr") or {}).get("Address", "").lower()
             for c in sandbox.state("quickbooks")["companies"][REALM]["Customer"]}
    return {o.external_id: by_id[o.external_id] for o in outcomes}


def misbound(sandbox, orders: list[Order], outcomes) -> list[tuple[str, str]]:
    """(the order's email, the bound customer's) where both are known and differ."""
    emails = emails_of_bound(sandbox, outcomes)
    return [(o.customer.email, emails[out.external_id]) for o, out in zip(orders, outcomes)
            if o.customer.email and emails[out.external_id] and emails[out.external_id] != o.customer.email.lower()]


def test_a_namesake_is_compared_with_every_shopper_of_the_batch_who_took_the_name(sandbox, runner):
    # A guest takes the name first; a shopper with an email may be the guest; a third with another
    # email is not that person, though the guest (the first to take the name) has no email to differ.
    orders = [shopper_order(1, None, "Sam", "Same"), shopper_order(2, "sam.a@example.com", "Sam", "Same"),
              shopper_order(3, "sam.b@example.com", "Sam", "Same")]
    outcomes = customer_step(runner, orders)
    assert [o.state for o in outcomes] == ["done"] * 3, [(o.state, o.error) for o in outcomes]
    assert misbound(sandbox, orders, outcomes) == []
    now = customers(sandbox)
    # One customer for the guest and sam.a, created with sam.a's email; sam.b under a name of its own.
    assert outcomes[0].external_id == outcomes[1].external_id == now["Sam Same"]["Id"]
    assert now["Sam Same"]["PrimaryEmailAddr"]["Address"] == "sam.a@example.com"
    assert outcomes[2].external_id == now["Sam Same (sam.b@example.com)"]["Id"]


def test_a_name_taken_meanwhile_by_another_person_is_created_under_the_disambiguated_name(sandbox, runner,
                                                                                          monkeypatch):
    # Another worker creates "Race Name" for someone else between our lookup and our create:
    # the lookup is made to miss it, so our create meets QuickBooks' 6240 Duplicate Name.
    owner = sandbox.control("quickbooks", "POST", f"companies/{REALM}/seed", json={"Customer": [
        {"DisplayName": "Race Name", "PrimaryEmailAddr": {"Address": "first.racer@example.com"}}]})["Customer"][0]
    real = runner.target.query
    monkeypatch.setattr(runner.target, "query",
                        lambda sql: {} if "DisplayName IN" in sql else real(sql))
    orders = [shopper_order(1, "second.racer@example.com", "Race", "Name")]
    outcomes = customer_step(runner, orders)
    assert outcomes[0].state == "done", outcomes[0].error
    assert outcomes[0].external_id != owner["Id"]
    assert customers(sandbox)["Race Name (second.racer@example.com)"]["Id"] == outcomes[0].external_id
    assert "belongs to another person" in outcomes[0].note


def test_two_workers_creating_namesakes_at_once_never_share_or_double_a_customer(sandbox, tmp_path):
    # Two workers (each its own ledger connection and QuickBooks session) run a batch at the same
    # moment: the same names for different emails, and the same emails under different names (one
    # shopper as the Shopify and the WooCommerce store know them). Their lookups are held until
    # both have started, so without the per-company lock both would find nothing and both create.
    settings = load_config(write_config(tmp_path, seed(sandbox.urls, orders=0)))
    batches = [[shopper_order(n, f"twin{n}.{side}@example.com", "Twin", f"Pair{n}") for n in range(5)]
               + [shopper_order(10 + n, f"both{n}@example.com", "Both", f"Pair{n} {side}") for n in range(5)]
               for side in ("a", "b")]
    barrier = threading.Barrier(2)
    results: list = [None, None]

    def worker(i: int) -> None:
        ledger = Ledger(settings.ledger_path)
        try:
            run = build_runner(settings, ledger, "quickbooks")
            real = run.target.query

            def query(sql: str) -> dict:
                if "PrimaryEmailAddr IN" in sql:
                    try:  # meet the other worker here, or go on alone once it is shut out by the lock
                        barrier.wait(timeout=2)
                    except threading.BrokenBarrierError:
                        pass
                return real(sql)
            run.target.query = query
            results[i] = customer_step(run, batches[i], first_id=1 + 100 * i)
        finally:
            ledger.close()
    threads = [threading.Thread(target=worker, args=(i,)) for i in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    orders, outcomes = batches[0] + batches[1], results[0] + results[1]
    assert [o.state for o in outcomes] == ["done"] * 20, [(o.state, o.error) for o in outcomes]
    assert misbound(sandbox, orders, outcomes) == []
    per_email = Counter((c.get("PrimaryEmailAddr") or {}).get("Address", "").lower()
                        for c in sandbox.state("quickbooks")["companies"][REALM]["Customer"])
    assert per_email == Counter({o.customer.email: 1 for o in orders}), per_email
