"""Customer lookups for a whole batch: a few ``IN (...)`` queries, the same bindings as one by one.

The ``quickbooks.customer`` step runs straight on the QuickBooks runner against the sandbox,
with a batch of 30 orders whose shoppers meet every lookup rule (found by email, inactive, found
by name, name owned by another person, two new namesakes, two orders of one shopper, a guest).
The emulator's request counters say how many queries it cost.
"""

from __future__ import annotations

import logging
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
