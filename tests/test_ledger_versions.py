"""Versions of one order meeting in the ledger: a tie in the store's whole-second clock never
regresses the order, and a step skipped for what an older version lacked gets another go."""

from __future__ import annotations

import dataclasses

from connector.engine import StorePull, record_page
from connector.ledger import Ledger
from connector.model import Money, Refund
from tests.test_workers import Source, order


def record(ledger: Ledger, version, via: str = "poll") -> StorePull:
    result = StorePull("shop")
    with ledger.transaction():
        record_page(Source(), [version], ledger, result, via=via)
    return result


def refunded(base):
    return dataclasses.replace(base, refunds=(Refund("r1", base.updated_at, Money.of("5.00", "USD")),))


def test_an_older_version_with_the_same_second_does_not_overwrite_a_refund(tmp_path):
    ledger = Ledger(tmp_path / "ledger.db")
    before = order(1)
    after = refunded(before)  # the refund happened within the same second: same updated_at
    assert record(ledger, after).new == 1
    late = record(ledger, before)  # the older read, recorded later (a slow poll beside a webhook)
    assert late.stale == 1 and late.changed == 0
    held = ledger.conn.execute("SELECT snapshot FROM orders").fetchone()[0]
    assert '"r1"' in held
    # The other way round is an ordinary change.
    other = Ledger(tmp_path / "other.db")
    record(other, before)
    assert record(other, after).changed == 1


def test_same_second_versions_with_the_same_money_are_taken_as_changes(tmp_path):
    ledger = Ledger(tmp_path / "ledger.db")
    record(ledger, order(1))
    noted = dataclasses.replace(order(1), note="leave at the door")
    assert record(ledger, noted).changed == 1


def test_a_skipped_step_is_tried_again_when_the_order_changes(tmp_path):
    ledger = Ledger(tmp_path / "ledger.db")
    record(ledger, order(1))
    contact = ledger.due_steps("hubspot.contact")[0]
    ledger.finish_step(contact.id, "skipped", error="order #1 has no email")
    record(ledger, dataclasses.replace(order(1), note="changed at the store"))
    state, attempts = ledger.conn.execute("SELECT state, attempts FROM steps WHERE id = ?", (contact.id,)).fetchone()
    assert (state, attempts) == ("pending", 0)
    # An unchanged re-read leaves a skipped step alone.
    ledger.finish_step(contact.id, "skipped", error="order #1 has no email")
    record(ledger, dataclasses.replace(order(1), note="changed at the store"))
    assert ledger.conn.execute("SELECT state FROM steps WHERE id = ?", (contact.id,)).fetchone()[0] == "skipped"
