"""The queue's order (webhook before poll before backfill) and one worker thread per target system."""

from __future__ import annotations

import threading
from datetime import datetime, timezone

from connector.engine import StorePull, record_page
from connector.ledger import PRIORITY, Ledger
from connector.model import Customer, FinancialStatus, FulfillmentStatus, Line, Money, Order
from connector.protocols import Outcome
from connector.workers import run_targets


def order(number: int) -> Order:
    moment = datetime(2026, 11, 1, 9, number % 60, tzinfo=timezone.utc)
    return Order(store="shop", system="shopify", source_order_id=str(number), name=f"#{number}", currency="USD",
                 created_at=moment, updated_at=moment, customer=Customer(email=f"c{number}@example.com"),
                 lines=(Line("1", "TEE", "Tee", 2, Money.of("10.00", "USD")),), total=Money.of("20.00", "USD"),
                 financial_status=FinancialStatus.PENDING, fulfillment_status=FulfillmentStatus.UNFULFILLED)


class Source:
    """Payloads are already canonical orders: record_page is what is under test."""

    store, system, posting = "shop", "shopify", "invoice"

    def to_order(self, payload):
        return payload

    def source_id(self, payload):
        return payload.source_order_id


def record(ledger: Ledger, orders: list[Order], via: str) -> None:
    with ledger.transaction():
        record_page(Source(), orders, ledger, StorePull("shop"), via=via)


def test_webhook_orders_are_taken_before_a_backfill_planned_earlier(tmp_path):
    ledger = Ledger(tmp_path / "ledger.db")
    record(ledger, [order(n) for n in range(1, 6)], "backfill")
    record(ledger, [order(7)], "poll")
    record(ledger, [order(9)], "webhook")
    due = [row.order_key for row in ledger.due_steps("hubspot.contact", limit=3)]
    assert due == ["shop:9", "shop:7", "shop:1"]


def test_a_webhook_for_an_order_already_queued_by_backfill_moves_its_steps_up(tmp_path):
    ledger = Ledger(tmp_path / "ledger.db")
    record(ledger, [order(n) for n in range(1, 6)], "backfill")
    record(ledger, [order(4)], "webhook")  # unchanged content: nothing new planned, but it jumps the queue
    assert [row.order_key for row in ledger.due_steps("hubspot.contact", limit=2)] == ["shop:4", "shop:1"]
    priorities = {p for (p,) in ledger.conn.execute("SELECT priority FROM steps WHERE order_key = 'shop:4'")}
    assert priorities == {PRIORITY["webhook"]}


def test_a_finished_step_keeps_its_priority_when_a_webhook_arrives(tmp_path):
    ledger = Ledger(tmp_path / "ledger.db")
    record(ledger, [order(1)], "backfill")
    step_id = ledger.due_steps("hubspot.contact")[0].id
    ledger.finish_step(step_id, "done", external_id="c1")
    record(ledger, [order(1)], "webhook")
    assert ledger.conn.execute("SELECT priority FROM steps WHERE id = ?", (step_id,)).fetchone()[0] == 9


class FakeRunner:
    """Marks every due step of its kinds done; can wait for the other system's thread to prove overlap."""

    def __init__(self, system: str, steps: tuple[str, ...], barrier: threading.Barrier | None = None):
        self.system, self.steps, self.batch_size, self.calls = system, steps, 100, 0
        self.barrier = barrier
        self.threads: set[str] = set()

    def run(self, step, work):
        self.calls += 1
        self.threads.add(threading.current_thread().name)
        if self.barrier is not None:
            self.barrier.wait(timeout=10)  # raises BrokenBarrierError unless the other system runs meanwhile
            self.barrier = None
        return [Outcome(w.step_id, "done", external_id=f"x{w.step_id}") for w in work]


def test_each_target_system_runs_in_its_own_thread_at_the_same_time(tmp_path):
    path = tmp_path / "ledger.db"
    ledger = Ledger(path)
    record(ledger, [order(n) for n in range(1, 4)], "poll")
    barrier = threading.Barrier(2)
    runners = {"hubspot": FakeRunner("hubspot", ("hubspot.contact", "hubspot.deal", "hubspot.deal_sync"), barrier),
               "quickbooks": FakeRunner("quickbooks", ("quickbooks.customer", "quickbooks.invoice",
                                                        "quickbooks.payment", "quickbooks.refund",
                                                        "quickbooks.void"), barrier)}

    def build(own_ledger, system):
        runners[system].ledger = own_ledger
        return runners[system]

    report = run_targets(lambda: Ledger(path), build, ["hubspot", "quickbooks"])
    assert not report.paused
    assert runners["hubspot"].threads == {"worker:hubspot:0"}
    assert runners["quickbooks"].threads == {"worker:quickbooks:0"}
    # hubspot.deal_sync waits for the QuickBooks invoice: a later round runs it, so nothing is left due.
    states = {state for (state,) in ledger.conn.execute("SELECT DISTINCT state FROM steps")}
    assert states == {"done"}
    assert report.outcomes["hubspot.deal_sync"] == {"done": 3}
    assert report.calls == {"hubspot": runners["hubspot"].calls, "quickbooks": runners["quickbooks"].calls}


def test_a_worker_that_crashes_pauses_its_system_and_leaves_the_other_running(tmp_path):
    path = tmp_path / "ledger.db"
    ledger = Ledger(path)
    record(ledger, [order(1)], "poll")

    def build(own_ledger, system):
        if system == "quickbooks":
            raise RuntimeError("cannot reach the token store")
        return FakeRunner("hubspot", ("hubspot.contact", "hubspot.deal", "hubspot.deal_sync"))

    report = run_targets(lambda: Ledger(path), build, ["hubspot", "quickbooks"])
    assert "cannot reach the token store" in report.paused["quickbooks"]
    assert report.outcomes["hubspot.contact"] == {"done": 1}
    assert ledger.conn.execute("SELECT state FROM steps WHERE step = 'quickbooks.invoice'").fetchone()[0] == "pending"


class OverlapRunner(FakeRunner):
    """Holds its first ``parties`` batches until all are in flight together: proves they overlap."""

    def __init__(self, parties: int):
        super().__init__("quickbooks", ("quickbooks.customer",))
        self.batch_size = 5
        self.barrier = threading.Barrier(parties)
        self.lock = threading.Lock()
        self.first_calls = parties
        self.seen: list[int] = []

    def run(self, step, work):
        with self.lock:
            self.calls += 1
            self.threads.add(threading.current_thread().name)
            self.seen.extend(w.step_id for w in work)
            wait = self.first_calls > 0
            self.first_calls -= 1
        if wait:
            self.barrier.wait(timeout=10)  # BrokenBarrierError unless `parties` batches are in flight at once
        return [Outcome(w.step_id, "done", external_id=f"x{w.step_id}") for w in work]


def test_several_batches_of_one_system_run_at_once_and_never_share_a_step(tmp_path):
    path = tmp_path / "ledger.db"
    ledger = Ledger(path)
    record(ledger, [order(n) for n in range(1, 31)], "poll")
    runner = OverlapRunner(parties=3)
    report = run_targets(lambda: Ledger(path), lambda own, system: runner, ["quickbooks"],
                         threads={"quickbooks": 3})
    assert not report.paused
    assert len(runner.threads) == 3
    customers = ledger.conn.execute("SELECT COUNT(*) FROM steps WHERE step = 'quickbooks.customer'").fetchone()[0]
    assert len(runner.seen) == len(set(runner.seen)) == customers == 30
    assert report.outcomes["quickbooks.customer"] == {"done": 30}
