"""The process-wide rate budgets (connector/rate_budget.py).

Unit tests run on a fake clock (no wall-clock assertions); the integration test
runs two QuickBooks targets for one realm in two threads against the emulator
with a tiny limit and checks that the emulator never had to answer 429.
"""

from __future__ import annotations

import threading
import time

import pytest
import requests

from connector.config import HubSpotSettings, LimitSettings, load_config
from connector.rate_budget import (BudgetedHTTPAdapter, Limits, RateBudget, RateLimited, Window, account_key,
                                   all_budgets, budget_for, limits_for, reset_budgets)
from sandbox.seed import REALM, seed


class FakeClock:
    """A clock that only moves when someone sleeps on it (thread-safe)."""

    def __init__(self):
        self.now = 0.0
        self._lock = threading.Lock()

    def __call__(self) -> float:
        with self._lock:
            return self.now

    def sleep(self, seconds: float) -> None:
        with self._lock:
            self.now += max(0.0, seconds)


@pytest.fixture(autouse=True)
def _fresh_registry():
    reset_budgets()
    yield
    reset_budgets()


def make(limits: Limits, clock: FakeClock | None = None) -> tuple[RateBudget, FakeClock]:
    clock = clock or FakeClock()
    return RateBudget("test:acct", limits, clock=clock, sleep=clock.sleep, trace=True), clock


def assert_window_respected(grants: list[tuple[float, int]], window: Window) -> None:
    """No ``window.seconds`` span holds more than ``window.limit`` units of granted requests."""
    times = sorted(t for t, cost in grants for _ in range(cost))
    for i in range(len(times) - window.limit):
        assert times[i + window.limit] - times[i] >= window.seconds - 1e-9, (i, times[i], times[i + window.limit])


def run_threads(count: int, work) -> None:
    errors: list[BaseException] = []

    def guarded(n):
        try:
            work(n)
        except BaseException as exc:  # noqa: BLE001 - re-raised in the main thread
            errors.append(exc)
    threads = [threading.Thread(target=guarded, args=(n,)) for n in range(count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
        assert not t.is_alive(), "a worker thread hung"
    if errors:
        raise errors[0]


# -- the window and the concurrency cap ---------------------------------------------------------
def test_many_threads_never_exceed_the_window_or_the_concurrency_cap():
    window = Window(10, 1.0)
    budget, clock = make(Limits((window,), max_concurrent=3))
    lock, state = threading.Lock(), {"in": 0, "max": 0}

    def work(_):
        for _ in range(25):
            with budget.slot():
                with lock:
                    state["in"] += 1
                    state["max"] = max(state["max"], state["in"])
                time.sleep(0.0005)  # real time, so the threads overlap; the fake clock does not move
                clock.sleep(0.01)  # the request takes 10 ms of fake time
                with lock:
                    state["in"] -= 1
    run_threads(8, work)
    assert len(budget.grants) == 200
    assert_window_respected(budget.grants, window)
    assert state["max"] <= 3 and budget.snapshot()["max_in_flight"] <= 3
    stats = budget.snapshot()
    assert stats["requests"] == stats["units"] == 200 and stats["in_flight"] == 0
    assert stats["waits"] > 0 and stats["waited_seconds"] > 0
    # 200 requests at 10 per second cannot take less than 19 seconds of (fake) time.
    assert clock() >= 19.0


def test_two_windows_both_hold():
    minute, second = Window(30, 60.0), Window(4, 1.0)
    budget, clock = make(Limits((minute, second)))

    def work(_):
        for _ in range(15):
            with budget.slot():
                clock.sleep(0.001)
    run_threads(4, work)
    assert_window_respected(budget.grants, minute)
    assert_window_respected(budget.grants, second)


def test_concurrency_cap_alone_blocks_until_a_release():
    budget, _ = make(Limits((), max_concurrent=2))
    inside = threading.Semaphore(0)
    leave = threading.Event()

    def hold(_):
        with budget.slot():
            inside.release()
            leave.wait(10)
    holders = [threading.Thread(target=hold, args=(n,)) for n in range(2)]
    for t in holders:
        t.start()
    assert inside.acquire(timeout=5) and inside.acquire(timeout=5)
    third = threading.Event()
    waiter = threading.Thread(target=lambda: (budget.acquire(), third.set()))
    waiter.start()
    assert not third.wait(0.2)  # both slots held: the third request waits ...
    leave.set()
    assert third.wait(5)  # ... and goes when one is released
    for t in holders + [waiter]:
        t.join(5)
    assert budget.snapshot()["max_in_flight"] == 2


def test_a_request_costs_its_units_and_a_cost_over_the_limit_still_goes_alone():
    window = Window(10, 1.0)
    budget, clock = make(Limits((window,)))
    for cost in (4, 4, 4, 30, 1):
        with budget.slot(cost):
            pass
    times = [t for t, _ in budget.grants]
    assert times[0] == times[1] == 0.0  # 8 of 10 used
    assert times[2] >= 1.0  # 4 more do not fit until the first two leave the window
    assert times[3] >= times[2] + 1.0  # 30 > 10: waits for an empty window, then goes
    assert times[4] >= times[3] + 1.0  # ... and fills it
    assert budget.snapshot()["units"] == 43


def test_a_request_counts_from_its_start_and_leaves_the_window_a_window_after_it_ended():
    budget, clock = make(Limits((Window(1, 5.0),)))
    with budget.slot():
        clock.sleep(3.0)  # a slow request: sent at 0, answered at 3
    with budget.slot():
        pass
    assert budget.grants[1][0] >= 8.0  # 3 + 5, not 0 + 5: the vendor may have counted it at 3


# -- what the vendor says -------------------------------------------------------------------------
def test_observe_believes_the_vendor_when_fewer_remain_than_we_think():
    budget, clock = make(Limits((Window(100, 10.0),)))
    with budget.slot():
        pass
    budget.observe(remaining=3, window_ms=10_000)  # someone else spent most of the window
    for _ in range(4):
        with budget.slot():
            pass
    times = [t for t, _ in budget.grants]
    assert times[:4] == [0.0] * 4  # the three the vendor still allows go at once
    assert times[4] >= 10.0  # the fourth waits for the window
    assert budget.snapshot()["corrections"] == 1


def test_observe_ignores_a_vendor_that_says_more_remain_and_takes_a_lower_maximum():
    budget, clock = make(Limits((Window(100, 10.0),)))
    budget.observe(remaining=500)
    assert budget.snapshot()["corrections"] == 0
    budget.observe(limit=8)  # X-HubSpot-RateLimit-Max below the configured 100
    for _ in range(9):
        with budget.slot():
            pass
    times = [t for t, _ in budget.grants]
    assert times[7] == 0.0 and times[8] >= 10.0


def test_penalise_stops_every_thread_until_it_is_over():
    budget, clock = make(Limits((Window(100, 1.0),)))
    budget.penalise(5.0)
    run_threads(3, lambda _: budget.acquire())
    assert all(t >= 5.0 for t, _ in budget.grants)
    stats = budget.snapshot()
    assert stats["penalties"] == 1 and stats["waited_seconds"] >= 5.0


def test_a_wait_longer_than_max_wait_is_handed_to_the_ledger():
    budget, clock = make(Limits((Window(100, 1.0),), max_wait=30))
    budget.penalise(3600)  # e.g. a long Retry-After
    with pytest.raises(RateLimited) as raised:
        budget.acquire()
    assert raised.value.retry_after == pytest.approx(3600) and raised.value.system == "test"
    assert budget.snapshot()["refused"] == 1 and clock() == 0.0  # nothing slept


# -- the registry ------------------------------------------------------------------------------------
def test_the_registry_hands_out_one_budget_per_system_and_account():
    limits = Limits((Window(5, 1.0),))
    seen: list[RateBudget] = []
    lock = threading.Lock()

    def get(_):
        budget = budget_for("quickbooks", "123", limits)
        with lock:
            seen.append(budget)
    run_threads(16, get)
    assert len({id(b) for b in seen}) == 1
    assert budget_for("quickbooks", "123", limits) is seen[0]
    assert budget_for("quickbooks", "456", limits) is not seen[0]
    assert budget_for("hubspot", "123", limits) is not seen[0]
    assert set(all_budgets()) == {("quickbooks", "123"), ("quickbooks", "456"), ("hubspot", "123")}
    other = Limits((Window(9, 1.0),), max_concurrent=2)
    assert budget_for("quickbooks", "123", other) is seen[0] and seen[0].limits == other  # reconfigured


def test_adapters_for_the_same_account_share_a_budget_keyed_without_the_secret(tmp_path):
    from adapters.hubspot import HubSpotTarget
    from adapters.quickbooks import QuickBooksTarget

    token = "pat-na1-very-secret-token"
    one, two = (HubSpotTarget(HubSpotSettings(access_token=token)) for _ in range(2))
    other = HubSpotTarget(HubSpotSettings(access_token="pat-na1-another-app"))
    assert one.budget is two.budget and one.search_budget is two.search_budget
    assert one.budget is not other.budget and one.budget is not one.search_budget
    for system, account in all_budgets():
        assert token not in account and token not in all_budgets()[(system, account)].name
    assert account_key(token) == account_key(token) != account_key("pat-na1-another-app")
    assert one.budget.limits == limits_for("hubspot") == Limits((Window(100, 10.0),))
    assert one.search_budget.limits == Limits((Window(5, 1.0),))

    class Settings:  # the QuickBooks target reads only these at construction
        realm_id = "4620816365000000000"
    first, second = QuickBooksTarget(Settings, None), QuickBooksTarget(Settings, None)
    assert first.budget is second.budget and first.batch_budget is second.batch_budget
    assert first.budget.limits == Limits((Window(500, 60.0),), max_concurrent=10)
    assert first.batch_budget.limits == Limits((Window(40, 60.0),))


def test_a_quickbooks_batch_costs_one_batch_request_and_one_call_per_item():
    from adapters.quickbooks import QuickBooksTarget

    class Settings:
        realm_id = "1"
    target = QuickBooksTarget(Settings, None)
    body = '{"BatchItemRequest": [{"bId": "1"}, {"bId": "2"}, {"bId": "3"}]}'
    batch = requests.Request("POST", "http://x/v3/company/1/batch?minorversion=75", data=body).prepare()
    assert target._charges(batch) == [(target.batch_budget, 1), (target.budget, 3)]
    query = requests.Request("GET", "http://x/v3/company/1/query?query=select").prepare()
    assert target._charges(query) == [(target.budget, 1)]


# -- configuration ------------------------------------------------------------------------------------
def test_limits_come_from_the_config_scaled_by_rate_scale():
    settings = LimitSettings.model_validate({
        "rate_scale": 0.5, "quickbooks": {"requests_per_minute": 400, "requests_per_second": 10},
        "hubspot": {"requests_per_10_seconds": 190}, "woocommerce": {"requests_per_second": 4}})
    assert limits_for("quickbooks", settings) == Limits((Window(200, 60.0), Window(5, 1.0)), max_concurrent=5)
    assert limits_for("quickbooks-batch", settings) == Limits((Window(20, 60.0),))
    assert limits_for("hubspot", settings) == Limits((Window(95, 10.0),))
    assert limits_for("hubspot-search", settings) == Limits((Window(2, 1.0),))
    assert limits_for("woocommerce", settings).windows == (Window(2, 1.0),)
    assert limits_for("woocommerce", LimitSettings()) is None  # self-hosted: unlimited by default
    slow = LimitSettings.model_validate({"woocommerce": {"requests_per_second": 0.25}})
    assert limits_for("woocommerce", slow).windows == (Window(1, 4.0),)


def test_the_limits_section_is_optional_strict_and_may_be_empty(tmp_path):
    from connector.errors import ConfigError
    base = """
stores:
  - name: demo-shop
    system: shopify
    shop_url: demo.myshopify.com
    access_token: ${SHOP_TOKEN}
hubspot:
  access_token: ${HS_TOKEN}
quickbooks:
  realm_id: "9341453000000000"
  client_id: ${QB_ID}
  client_secret: ${QB_SECRET}
  refresh_token: ${QB_REFRESH}
"""
    env = {"SHOP_TOKEN": "a", "HS_TOKEN": "b", "QB_ID": "c", "QB_SECRET": "d", "QB_REFRESH": "e"}
    path = tmp_path / "config.yaml"
    path.write_text(base)
    assert load_config(path, env).limits == LimitSettings()
    path.write_text(base + "limits:\n")
    assert load_config(path, env).limits == LimitSettings()
    path.write_text(base + "limits:\n  rate_scale: 2\n  quickbooks:\n  hubspot:\n    requests_per_10_seconds: 190\n")
    loaded = load_config(path, env).limits
    assert loaded.rate_scale == 2 and loaded.hubspot.requests_per_10_seconds == 190
    assert loaded.quickbooks.requests_per_minute == 500
    for wrong, key in (("  shopify:\n    requests_per_second: 2\n", "limits.shopify"),
                       ("  rate_scale: 0\n", "limits.rate_scale"),
                       ("  quickbooks:\n    max_concurrent: 0\n", "limits.quickbooks.max_concurrent")):
        path.write_text(base + "limits:\n" + wrong)
        with pytest.raises(ConfigError) as raised:
            load_config(path, env)
        assert raised.value.key == key


# -- retries go through the budget --------------------------------------------------------------------
class FakeResponse:
    def __init__(self, status: int, headers: dict | None = None):
        self.status_code, self.headers, self.closed = status, headers or {}, False

    def close(self):
        self.closed = True


def test_the_http_adapter_charges_every_retry_and_a_429_pauses_the_budget(monkeypatch):
    from urllib3.util.retry import Retry

    budget, clock = make(Limits((Window(100, 10.0),)))
    outcomes = [requests.ConnectionError("reset"), FakeResponse(429, {"Retry-After": "7"}),
                FakeResponse(503), FakeResponse(200)]

    def fake_send(self, request, **kwargs):
        outcome = outcomes.pop(0)
        if isinstance(outcome, Exception):
            raise outcome
        return outcome
    monkeypatch.setattr(requests.adapters.HTTPAdapter, "send", fake_send)
    retry = Retry(total=4, status_forcelist=(429, 503), allowed_methods=None, backoff_factor=1.0,
                  respect_retry_after_header=True, raise_on_status=False)
    adapter = BudgetedHTTPAdapter(lambda request: [(budget, 1)], retry, sleep=clock.sleep)
    request = requests.Request("POST", "http://127.0.0.1:9/v3/company/1/invoice").prepare()
    response = adapter.send(request, timeout=5)
    assert response.status_code == 200 and not outcomes
    stats = budget.snapshot()
    assert stats["requests"] == 4 and stats["penalties"] == 1  # every try took a slot
    times = [t for t, _ in budget.grants]
    assert times[2] >= times[1] + 7.0  # the 429's Retry-After held the next try back


def test_the_http_adapter_returns_the_last_answer_when_the_tries_are_spent(monkeypatch):
    from urllib3.util.retry import Retry

    budget, clock = make(Limits((Window(100, 10.0),)))
    monkeypatch.setattr(requests.adapters.HTTPAdapter, "send", lambda self, request, **kw: FakeResponse(429))
    adapter = BudgetedHTTPAdapter(lambda request: [(budget, 1)], Retry(total=2, status_forcelist=(429,)),
                                  sleep=clock.sleep)
    response = adapter.send(requests.Request("GET", "http://127.0.0.1:9/x").prepare())
    assert response.status_code == 429 and budget.snapshot()["requests"] == 3


# -- against the emulator -------------------------------------------------------------------------------
def test_two_quickbooks_targets_for_one_realm_share_a_tiny_budget_and_never_see_a_429(sandbox, tmp_path):
    from adapters.quickbooks import QuickBooksTarget
    from connector.demo import write_config
    from connector.ledger import Ledger

    settings = load_config(write_config(tmp_path, seed(sandbox.urls, orders=2, seed_value=3)))
    # The emulator enforces 10 requests per second and 2 at a time for this realm, each taking 30 ms.
    sandbox.control("quickbooks", "POST", "options",
                    json={"requests_per_second": 10, "max_concurrent": 2, "latency_ms": 30})
    # Ours: 20/s and 4 at a time, scaled by 0.5 to the same 10/s and 2.
    limits = LimitSettings.model_validate({"rate_scale": 0.5, "quickbooks": {
        "requests_per_second": 20, "max_concurrent": 4, "requests_per_minute": 1000}})
    per_thread = 15
    calls: dict[int, int] = {}

    def work(n):
        ledger = Ledger(settings.ledger_path)
        try:
            target = QuickBooksTarget(settings.quickbooks, ledger, limits)
            for _ in range(per_thread):
                assert target.query("SELECT * FROM Item MAXRESULTS 1")["Item"]
            calls[n] = target.calls
        finally:
            ledger.close()
    # The access token once, first, so that the threads only make API calls.
    ledger = Ledger(settings.ledger_path)
    QuickBooksTarget(settings.quickbooks, ledger, limits).vault.access_token()
    ledger.close()
    run_threads(2, work)

    counters = sandbox.control("quickbooks", "GET", "counters")
    assert counters["throttled"] == 0
    queries = {k: v for k, v in counters["by_endpoint"].items() if "/query" in k}
    assert sum(v["total"] for v in queries.values()) == 2 * per_thread
    assert calls == {0: per_thread, 1: per_thread}
    budget = all_budgets()[("quickbooks", REALM)]
    stats = budget.snapshot()
    assert stats["requests"] == 2 * per_thread and stats["max_in_flight"] <= 2
    assert stats["waits"] > 0  # the budget, not luck, kept it under the emulator's limit
    assert budget.limits == Limits((Window(500, 60.0), Window(10, 1.0)), max_concurrent=2)


def test_a_throttled_quickbooks_call_is_retried_through_the_budget(sandbox, tmp_path):
    from adapters.quickbooks import QuickBooksTarget
    from connector.demo import write_config
    from connector.ledger import Ledger

    settings = load_config(write_config(tmp_path, seed(sandbox.urls, orders=2, seed_value=3)))
    sandbox.control("quickbooks", "POST", "faults", json={"faults": [
        {"path_contains": "/query", "status": 429, "times": 1}]})
    ledger = Ledger(settings.ledger_path)
    try:
        target = QuickBooksTarget(settings.quickbooks, ledger)
        target.vault.access_token()
        assert target.query("SELECT * FROM Item MAXRESULTS 1")["Item"]
        stats = target.budget.snapshot()
        assert target.calls == 1  # one API call ...
        assert stats["requests"] == 2 and stats["penalties"] == 1  # ... two HTTP tries, both budgeted
    finally:
        ledger.close()
