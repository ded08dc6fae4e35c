"""Group commit of webhook deliveries (connector/webhook_committer.py): many deliveries share one
transaction, yet each is answered 2xx only once its row is committed, duplicates inside one group are
told apart, and a group whose commit fails is answered 5xx and leaves nothing behind (DESIGN.md
guarantee 1).

To put chosen deliveries into one group without timing anything, the tests hold the committer inside
its first transaction (a gate around ``committer.write``), send the deliveries, wait until all of them
are queued behind it, and let it go: the next transaction takes exactly those.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone

import httpx
import pytest

from connector import inbox
from connector.ledger import Ledger
from connector.webhook_committer import CommitFailed, GroupCommitter
from webhook_support import PLACEHOLDER, SHOP, SHOP_SECRET, inbox_rows, sign, start_server, wait_for


def body(order_id: int) -> bytes:
    return json.dumps({"id": order_id, "admin_graphql_api_id": f"gid://shopify/Order/{order_id}",
                       "updated_at": "2026-11-20T10:00:00-05:00"}, separators=(",", ":")).encode()


def headers(raw: bytes, webhook_id: str) -> dict:
    return {"Content-Type": "application/json", "X-Shopify-Topic": "orders/updated",
            "X-Shopify-Hmac-Sha256": sign(SHOP_SECRET, raw), "X-Shopify-Webhook-Id": webhook_id}


def post(server, webhook_id: str, order_id: int) -> httpx.Response:
    raw = body(order_id)
    return httpx.post(server.url("shopify", SHOP), content=raw, headers=headers(raw, webhook_id), timeout=30)


class Gate:
    """Wraps the committer's write: holds the first transaction until released; fails chosen ones."""

    def __init__(self, committer: GroupCommitter, fail: tuple[int, ...] = ()):
        self.real = committer.write
        self.fail = fail
        self.groups: list[list[str]] = []  # dedupe keys of each transaction, in order
        self.holding = threading.Event()
        self.release = threading.Event()
        committer.write = self

    def __call__(self, ledger, deliveries):
        number = len(self.groups)
        self.groups.append([d.dedupe_key for d in deliveries])
        if number == 0:
            self.holding.set()
            assert self.release.wait(30), "the test never released the committer"
        if number in self.fail:
            raise sqlite3.OperationalError("disk I/O error (simulated)")
        return self.real(ledger, deliveries)


def run_async(make_coroutine):
    """``asyncio.run`` in a thread of its own: the test's thread may already hold a running loop
    (an earlier test's, e.g. a browser driver's), where ``asyncio.run`` refuses to start."""
    outcome = {}

    def target():
        try:
            outcome["value"] = asyncio.run(make_coroutine())
        except BaseException as exc:  # noqa: BLE001 - re-raised in the test's thread
            outcome["error"] = exc
    thread = threading.Thread(target=target)
    thread.start()
    thread.join()
    if "error" in outcome:
        raise outcome["error"]
    return outcome["value"]


@pytest.fixture
def server(tmp_path, monkeypatch):
    srv = start_server(tmp_path, PLACEHOLDER, monkeypatch)
    yield srv
    srv.stop()


def one_group(server, gate: Gate, sends: list[tuple[str, int]]) -> tuple[httpx.Response, list[httpx.Response]]:
    """Hold the committer on a first delivery, queue ``sends`` behind it, release; return the answers."""
    committer = server.app.state.webhooks.committer
    with ThreadPoolExecutor(max_workers=len(sends) + 1) as pool:
        first = pool.submit(post, server, "wh-first", 1)
        wait_for(gate.holding.is_set, 15, "the first transaction")
        rest = [pool.submit(post, server, webhook_id, order_id) for webhook_id, order_id in sends]
        wait_for(lambda: committer.waiting() == len(sends), 15, "the deliveries queued behind it")
        gate.release.set()
        return first.result(), [f.result() for f in rest]


def test_two_hundred_concurrent_deliveries_are_each_in_the_inbox_once_when_answered(server):
    ledger_path = server.settings.ledger_path
    seen_at_answer: dict[str, int | None] = {}

    async def send_all():
        limits = httpx.Limits(max_connections=200, max_keepalive_connections=200)
        async with httpx.AsyncClient(limits=limits, timeout=60) as client:
            async def one(n: int):
                raw = body(10_000 + n)
                response = await client.post(server.url("shopify", SHOP), content=raw,
                                             headers=headers(raw, f"wh-{n}"))
                # Read with a connection of our own the moment the 2xx arrives: the row is there.
                conn = sqlite3.connect(ledger_path)
                try:
                    row = conn.execute("SELECT id FROM inbox WHERE dedupe_key = ?", (f"webhook-id|wh-{n}",)).fetchone()
                finally:
                    conn.close()
                seen_at_answer[f"wh-{n}"] = row[0] if row else None
                return n, response
            return await asyncio.gather(*(one(n) for n in range(200)))

    answers = run_async(send_all)
    assert {response.status_code for _, response in answers} == {200}
    ids = {f"wh-{n}": response.json()["inbox_id"] for n, response in answers}
    assert not any(response.json()["duplicate"] for _, response in answers)
    assert seen_at_answer == ids  # committed before the answer, under the id the answer names
    rows = inbox_rows(ledger_path)
    assert sorted(r["dedupe_key"] for r in rows) == sorted(f"webhook-id|wh-{n}" for n in range(200))
    assert {r["id"] for r in rows} == set(ids.values()) and all(r["duplicates"] == 0 for r in rows)
    committer = server.app.state.webhooks.committer
    assert committer.committed == 200 and 1 <= committer.batches <= 200


def test_duplicate_webhook_id_inside_one_group_is_stored_once_and_answered_as_duplicate(server):
    gate = Gate(server.app.state.webhooks.committer)
    first, answers = one_group(server, gate, [("wh-twice", 7), ("wh-other", 8), ("wh-twice", 7)])
    assert first.status_code == 200
    assert [r.status_code for r in answers] == [200, 200, 200]
    assert len(gate.groups) == 2 and sorted(gate.groups[1]) == \
        ["webhook-id|wh-other", "webhook-id|wh-twice", "webhook-id|wh-twice"]  # one transaction
    twice = [answers[0].json(), answers[2].json()]
    assert twice[0]["inbox_id"] == twice[1]["inbox_id"]
    assert sorted(a["duplicate"] for a in twice) == [False, True]  # whichever came first is the new one
    assert answers[1].json()["duplicate"] is False
    rows = inbox_rows(server.settings.ledger_path)
    assert len(rows) == 3
    assert {r["dedupe_key"]: r["duplicates"] for r in rows} == \
        {"webhook-id|wh-first": 0, "webhook-id|wh-twice": 1, "webhook-id|wh-other": 0}


def test_failed_commit_answers_503_for_its_group_only_and_stores_none_of_it(server, caplog):
    committer = server.app.state.webhooks.committer
    gate = Gate(committer, fail=(1,))
    sends = [(f"wh-lost-{n}", 100 + n) for n in range(5)]
    first, answers = one_group(server, gate, sends)
    assert first.status_code == 200 and first.json()["duplicate"] is False  # its own, earlier group
    assert [r.status_code for r in answers] == [503] * 5
    assert all(r.headers.get("retry-after") for r in answers)
    assert sorted(gate.groups[1]) == sorted(f"webhook-id|{w}" for w, _ in sends)
    assert [r["dedupe_key"] for r in inbox_rows(server.settings.ledger_path)] == ["webhook-id|wh-first"]
    assert committer.committed == 1
    assert any("commit failed for 5 deliveries" in r.getMessage() for r in caplog.records)
    # The store sends again; the committer and its connection carry on.
    again = post(server, "wh-lost-0", 100)
    assert again.status_code == 200 and again.json()["duplicate"] is False
    assert [r["dedupe_key"] for r in inbox_rows(server.settings.ledger_path)] == \
        ["webhook-id|wh-first", "webhook-id|wh-lost-0"]


def delivery(key: str, body_text: str | None = "{}") -> inbox.Delivery:
    return inbox.Delivery(SHOP, "shopify", "orders/updated", key, "1", datetime(2026, 1, 1, tzinfo=timezone.utc),
                          body_text, {"X-Shopify-Webhook-Id": key})


def test_add_many_tells_new_rows_from_duplicates_in_the_list_and_in_the_inbox(tmp_path):
    ledger = Ledger(tmp_path / "ledger.db")
    try:
        (old_id, new), = inbox.add_many(ledger, [delivery("a")])
        assert new
        results = inbox.add_many(ledger, [delivery("b"), delivery("a"), delivery("b"), delivery("c")])
        assert [n for _, n in results] == [True, False, False, True]
        assert results[1][0] == old_id and results[0][0] == results[2][0]
        counts = dict(ledger.conn.execute("SELECT dedupe_key, duplicates FROM inbox"))
        assert counts == {"a": 1, "b": 1, "c": 0}
    finally:
        ledger.close()


def test_add_many_is_all_or_nothing_and_leaves_the_connection_usable(tmp_path):
    ledger = Ledger(tmp_path / "ledger.db")
    try:
        with pytest.raises(sqlite3.IntegrityError):  # body is NOT NULL: the third one cannot be stored
            inbox.add_many(ledger, [delivery("a"), delivery("b"), delivery("bad", None), delivery("c")])
        assert not ledger.conn.in_transaction
        assert ledger.conn.execute("SELECT COUNT(*) FROM inbox").fetchone()[0] == 0
        assert inbox.add(ledger, delivery("a"))[1] is True
    finally:
        ledger.close()


def test_committer_commits_what_is_queued_on_close_and_refuses_after(tmp_path):
    path = tmp_path / "ledger.db"
    committer = GroupCommitter(path)

    async def run():
        results = await asyncio.gather(*(committer.commit(delivery(f"k{n}")) for n in range(50)))
        closing = asyncio.get_running_loop().run_in_executor(None, committer.close)
        await closing
        with pytest.raises(CommitFailed):
            await committer.commit(delivery("late"))
        return results

    results = run_async(run)
    assert all(new for _, new in results) and len({row_id for row_id, _ in results}) == 50
    conn = sqlite3.connect(path)
    try:
        assert conn.execute("SELECT COUNT(*) FROM inbox").fetchone()[0] == 50
    finally:
        conn.close()
