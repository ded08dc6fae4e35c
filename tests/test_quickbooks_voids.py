"""Voids of cancelled orders go through the batch endpoint together (issue 9), with the same outcomes.

The generator's shop has two cancelled unpaid orders, so a first pass voids two invoices in one
batch call; a void refused there with 5010 takes the single path's re-read; and a QuickBooks that
answers a batch void without voiding makes the connector void one by one.
"""

from __future__ import annotations

import logging

from test_quickbooks_target import books, ledger_rows, order_key, retry_now, run_pass, settings  # noqa: F401

SINGLE_VOID = "POST /v3/company/{realm}/invoice"


def voided(sandbox) -> set[str]:
    return {order_key(i) for i in books(sandbox)["Invoice"] if i["PrivateNote"].startswith("Voided")}


def single_voids(sandbox) -> int:
    return sandbox.control("quickbooks", "GET", "counters")["by_endpoint"].get(SINGLE_VOID, {}).get("total", 0)


def test_cancelled_orders_are_voided_together_in_one_batch_call(sandbox, settings):  # noqa: F811
    _, steps, failures = run_pass(settings)
    assert failures == []
    assert steps["quickbooks.void"] == {"done": 2}, steps
    assert len(voided(sandbox)) == 2
    assert single_voids(sandbox) == 0
    responses = ledger_rows(settings, "SELECT response FROM events WHERE step = 'quickbooks.void' AND"
                                      " detail = 'voided'")
    assert len(responses) == 2, responses
    assert all(r[0].startswith("voided: Invoice ") and "(batch " in r[0] for r in responses), responses


def test_a_stale_sync_token_in_a_batch_void_is_reread_and_voided_singly(sandbox, settings,  # noqa: F811
                                                                          monkeypatch):
    import adapters.quickbooks_voids as voids
    from connector.errors import RetryableError
    from connector.protocols import Outcome
    with monkeypatch.context() as patch:  # the first pass books everything but the voids
        patch.setattr(voids, "run_voids", lambda books, kind, work: {
            w.step_id: Outcome(w.step_id, "failed", error=RetryableError("not yet")) for w in work})
        run_pass(settings)
    keys = [k for (k,) in ledger_rows(settings, "SELECT order_key FROM steps WHERE step = 'quickbooks.void'")]
    assert len(keys) == 2
    # The ledger holds an older token than QuickBooks for one of them (e.g. a payment we made bumped it).
    ledger_rows(settings, "UPDATE bindings SET details = json_set(details, '$.SyncToken', '-1')"
                          " WHERE kind = 'invoice' AND canonical_key = ?", keys[0])
    retry_now(settings)
    _, steps, failures = run_pass(settings)
    assert failures == []
    assert steps["quickbooks.void"] == {"done": 2}, steps
    assert voided(sandbox) == set(keys)
    assert single_voids(sandbox) == 2  # the stale one: refused again singly, then voided with the fresh token


def test_a_batch_void_quickbooks_does_not_carry_out_is_sent_singly(sandbox, settings, monkeypatch,  # noqa: F811
                                                                    caplog):
    from adapters.quickbooks import QuickBooksTarget
    # A QuickBooks that ignores optionsData: the batch item is a sparse update that changes nothing.
    monkeypatch.setattr(QuickBooksTarget, "void_batch",
                        lambda self, items, rid: self._batch(items, rid, {"operation": "update"}))
    with caplog.at_level(logging.WARNING, logger="o2c.quickbooks"):
        _, steps, failures = run_pass(settings)
    assert failures == []
    assert steps["quickbooks.void"] == {"done": 2}, steps
    assert len(voided(sandbox)) == 2
    assert single_voids(sandbox) == 2
    assert len([r for r in caplog.records if "one by one" in r.getMessage()]) == 1
