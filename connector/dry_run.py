"""``o2c replay --dry-run``: what a replay would send, field by field, against what the target holds now.

A dry run runs the real step runners (the same mapping, lookups, item
resolution and checks as a replay) with two things changed, so it changes
nothing anywhere:

1. **a throw-away copy of the ledger.** The ledger is copied with SQLite's
   online backup into a temporary file; the selected steps are requeued,
   claimed and finished there, and every binding or cache write a runner
   makes lands there. ``--fresh`` re-reads the orders from their stores into
   the copy only. The copy is deleted at the end. (One exception, on
   purpose: QuickBooks' OAuth tokens live in the real ledger. Reading
   QuickBooks may need a fresh access token, and Intuit rotates the refresh
   token on each refresh; saving the rotated one in a copy that is then
   deleted would lose it. So the token vault keeps using the real ledger,
   exactly as a sync would.)
2. **targets that capture writes instead of sending them.** Reads go to the
   real HubSpot and QuickBooks (lookups, probes, and what they hold now);
   every write is recorded as a :class:`Write` and never sent. Each
   wrapper passes through only the read methods it names; any other method
   ends the item with an error rather than reach the target.

   - QuickBooks: a captured create or update raises :class:`WouldSend`, which
     ends that item's run (QuickBooks computes totals, tax and ids on its
     side, so there is no honest answer to carry on with). The one exception
     is creating a missing Item (``create_missing_items``): the document
     that needs it gets a placeholder id, so the document is shown too.
   - HubSpot: its answers carry only ids, so a captured upsert answers with
     the record's real id (read by its unique property) or a placeholder
     ``(new deals <key>)``, and the step goes on to its line items and
     associations, which are captured too. Nothing with a placeholder is
     ever sent.

Each captured write is then compared with what the target holds for the same
key (:mod:`connector.field_diff`): the QuickBooks object by its ``Id`` for an
update, the document with the same DocNumber or the payment with the same
PaymentRefNum for a create; the HubSpot record by its unique property
(contact by email, deal by the order-key property, line item by the line-key
property).

Steps run kind by kind in the engine's order, one item at a time. A step
whose dependency is not ended in the copy (because it is itself failed, or
because this dry run only captured its write) is shown as waiting, as a
replay would leave it: its own body would name the id that write returns.
"""

from __future__ import annotations

import sqlite3
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from adapters.hubspot import WriteResult
from adapters.hubspot_runner import HubSpotRunner
from adapters.quickbooks_runner import QuickBooksRunner
from connector.config import doc_prefix
from connector.composition import hubspot_target, quickbooks_target
from connector.errors import PausedError, PermanentError, RetryableError, SkippableError, StepError
from connector.field_diff import Diff, diff
from connector.ledger import FINAL_STATES, Ledger
from connector.planner import KINDS, kind_of
from connector.protocols import Outcome, Work
from connector.replay import requeue
from connector.snapshot import from_json

HELD = "held_for_review"
SINGULAR = {"contacts": "contact", "deals": "deal", "line_items": "line item"}
# QuickBooks request keys that are no field of the object (never "new" in a diff).
QUICKBOOKS_REQUEST_ONLY = ("sparse",)

# What each verdict means, for people (docs/replay.md).
WOULD_SEND = "would send"
NOTHING = "nothing to send"
WOULD_SKIP = "would skip"
WOULD_FAIL = "would fail"
WAITS = "waits"
PAUSED = "paused"


@dataclass
class Write:
    """One write a replay would make, and what the target holds for the same key now."""

    system: str
    operation: str  # create | update | void | upsert | associate | ensure_property
    entity: str  # QuickBooks entity (Invoice) or HubSpot object type (deals)
    key: str | None  # DocNumber, Id, email, order key, line key ...
    body: dict
    summary: str
    target_id: str | None = None  # the id the target holds it under now
    current: dict | None = None  # what the target holds now (None: nothing)
    diff: Diff | None = None
    note: str | None = None  # e.g. the target could not be read


@dataclass
class StepPreview:
    """What replaying one step would do."""

    step_id: int
    order_key: str
    step: str
    state: str  # the step's state in the ledger now
    verdict: str  # would send | nothing to send | would skip | would fail | waits | paused
    message: str | None = None
    what_to_do: str | None = None
    writes: list[Write] = field(default_factory=list)


@dataclass
class DryRun:
    steps: list[StepPreview] = field(default_factory=list)
    refetched: list[dict] = field(default_factory=list)  # --fresh: per store, what re-reading found


class WouldSend(StepError):
    """A write captured instead of sent: it ends the item's run; nothing reached the target."""

    def __init__(self, write: Write):
        super().__init__(f"dry run: {write.summary}", system=write.system)
        self.write = write


class Recorder:
    """Collects the writes of the step being previewed."""

    def __init__(self):
        self.writes: list[Write] = []

    def begin(self) -> None:
        self.writes = []

    def add(self, write: Write) -> Write:
        self.writes.append(write)
        return write


class _Guarded:
    """Passes through only the named read methods; anything else ends the item, unsent."""

    READS: tuple[str, ...] = ()

    def __init__(self, target, recorder: Recorder):
        self._target = target
        self._recorder = recorder

    def __getattr__(self, name: str):
        if name in self.READS:
            return getattr(self._target, name)
        if name.startswith("_"):
            raise AttributeError(name)
        raise StepError(f"dry run: {type(self._target).__name__}.{name} is not known to be a read, so it was not "
                        "called", what_to_do="report this: the dry run must learn whether it writes")


class CapturingQuickBooks(_Guarded):
    """A :class:`QuickBooksTarget` whose creates and updates are captured, never sent."""

    READS = ("system", "realm", "settings", "calls", "last_status", "last_intuit_tid", "query", "read", "read_many",
             "preferences", "find_customer", "find_items", "find_by_doc_number", "find_by_doc_numbers",
             "find_payments", "find_named")

    def create(self, entity: str, body: dict, request_id: str) -> dict:
        write = self._recorder.add(self._create(entity, body))
        if entity == "Item":  # the document that needs the item goes on, naming a placeholder
            return {**body, "Id": write.target_id or f"(new Item {write.key})"}
        raise WouldSend(write)

    def batch(self, items: list[tuple[str, str, dict]], request_id: str) -> dict[str, dict | Exception]:
        results: dict[str, dict | Exception] = {}
        for bid, entity, body in items:
            try:
                results[bid] = self.create(entity, body, request_id)
            except WouldSend as captured:
                results[bid] = captured
        return results

    def update(self, entity: str, body: dict, request_id: str, *, void: bool = False) -> dict:
        object_id = str(body.get("Id"))
        current, note = None, None
        try:
            current = self._target.read(entity, object_id)
        except StepError as exc:
            note = f"could not read {entity} {object_id} from QuickBooks: {exc}"
        number = (current or {}).get("DocNumber")
        named = f"{entity} {number} (Id {object_id})" if number else f"{entity} {object_id}"
        write = Write("quickbooks", "void" if void else "update", entity, object_id, body,
                      f"would {'void' if void else 'update'} {named}", object_id, current,
                      diff(body, current, skip=QUICKBOOKS_REQUEST_ONLY), note)
        raise WouldSend(self._recorder.add(write))

    def _create(self, entity: str, body: dict) -> Write:
        key = body.get("DocNumber") or body.get("PaymentRefNum") or body.get("DisplayName") or body.get("Name")
        current, note = None, None
        try:
            if body.get("DocNumber"):
                current = self._target.find_by_doc_number(entity, body["DocNumber"])
            elif entity == "Payment" and body.get("PaymentRefNum"):
                current = next((p for p in self._target.find_payments([body["PaymentRefNum"]])
                                if str(p.get("CustomerRef", {}).get("value")) ==
                                str((body.get("CustomerRef") or {}).get("value"))), None)
        except StepError as exc:
            note = f"could not look for an existing {entity} {key} in QuickBooks: {exc}"
        summary = f"would create {entity} {key}" if key else f"would create a {entity}"
        if current is not None:
            summary += (f"; QuickBooks already holds {entity} {key} (Id {current.get('Id')}), compared below: "
                        "a replay would not find it by its binding and would create another")
        return Write("quickbooks", "create", entity, key, body, summary,
                     str(current["Id"]) if current else None, current,
                     diff(body, current, skip=QUICKBOOKS_REQUEST_ONLY), note)


class CapturingHubSpot(_Guarded):
    """A :class:`HubSpotTarget` whose upserts, updates, associations and property creates are captured."""

    READS = ("system", "calls", "timeout", "deal_pipelines", "find_contact_by_phone", "read_by_property")

    def upsert(self, object_type: str, records: dict[str, dict[str, str]], id_property: str) -> dict[str, WriteResult]:
        return self._write(object_type, records, id_property, "upsert")

    def update(self, object_type: str, records: dict[str, dict[str, str]], id_property: str) -> dict[str, WriteResult]:
        return self._write(object_type, records, id_property, "update")

    def _write(self, object_type, records, id_property, op) -> dict[str, WriteResult]:
        names = sorted({name for props in records.values() for name in props})
        found, note = {}, None
        try:
            found = self._target.read_by_property(object_type, id_property, list(records), names)
        except StepError as exc:
            note = f"could not read {object_type} from HubSpot: {exc}"
        results: dict[str, WriteResult] = {}
        for key, props in records.items():
            held = found.get(key)
            current = {"properties": {n: v for n, v in held["properties"].items() if n in props}} if held else None
            noun = SINGULAR.get(object_type, object_type)
            if held is None:
                summary = f"would create {noun} {key}" if op == "upsert" else \
                    f"would update {noun} {key}, but HubSpot holds no such record: the update would be refused"
            else:
                summary = f"would update {noun} {held['id']} ({id_property} {key})"
            self._recorder.add(Write("hubspot", op, object_type, key, {"properties": props}, summary,
                                     held["id"] if held else None, current, diff({"properties": props}, current),
                                     note))
            if held is not None:
                results[key] = WriteResult(key, held["id"], created=False)
            elif op == "upsert":
                results[key] = WriteResult(key, f"(new {object_type} {key})", created=True)
            else:
                results[key] = WriteResult(key, None, error=PermanentError(
                    f"HubSpot holds no {object_type} whose {id_property} is {key}: the update would be refused",
                    system="hubspot", what_to_do="replay the step that creates it first"))
        return results

    def associate(self, from_type: str, to_type: str, type_id: int,
                  pairs: list[tuple[str, str]]) -> dict[tuple[str, str], Exception | None]:
        pairs = list(dict.fromkeys(pairs))
        body = {"pairs": [f"{a} -> {b}" for a, b in pairs], "type_id": type_id}
        sources = sorted({a for a, _ in pairs})
        self._recorder.add(Write(
            "hubspot", "associate", f"{from_type}->{to_type}", ", ".join(sources), body,
            f"would link {SINGULAR.get(from_type, from_type)} {', '.join(sources)} to {len(pairs)} "
            f"{SINGULAR.get(to_type, to_type)}(s) (association type {type_id}; a link that exists stays as it is)",
            diff=diff(body, None)))
        return {pair: None for pair in pairs}

    def ensure_property(self, object_type: str, name: str, label: str, *, unique: bool = False,
                        number: bool = False) -> None:
        body = {"name": name, "label": label, "unique": unique, "number": number}
        self._recorder.add(Write("hubspot", "ensure_property", object_type, name, body,
                                 f"would create the {object_type} property '{name}' unless it exists",
                                 diff=diff(body, None)))


# -- the run ------------------------------------------------------------------------------

def copy_ledger(ledger: Ledger, path: Path) -> Ledger:
    """A consistent copy of ``ledger`` at ``path`` (SQLite online backup: it only reads the original)."""
    ledger.sqlite_path("a dry run (it works on a copy of the ledger file)")
    destination = sqlite3.connect(path)
    try:
        ledger.conn.backup(destination)
    finally:
        destination.close()
    return Ledger(path)


def _runner(settings, ledger: Ledger, copy: Ledger, system: str, recorder: Recorder):
    if system == "hubspot":
        return HubSpotRunner(CapturingHubSpot(hubspot_target(settings), recorder), copy, settings.hubspot)
    if system == "quickbooks":
        prefixes = {store.name: doc_prefix(store) for store in settings.stores}
        # The token vault stays on the real ledger (module docstring); everything else uses the copy.
        target = CapturingQuickBooks(quickbooks_target(settings, ledger), recorder)
        return QuickBooksRunner(target, copy, settings.quickbooks, prefixes)
    raise ValueError(f"no target system {system!r}")


def preview(settings, ledger: Ledger, chosen: list[dict], *, fresh: bool = False) -> DryRun:
    """What replaying ``chosen`` (rows of :func:`connector.replay.select`) would do; changes nothing."""
    result = DryRun()
    if not chosen:
        return result
    with tempfile.TemporaryDirectory(prefix="o2c-dry-run-") as folder:
        copy = copy_ledger(ledger, Path(folder) / "ledger.db")
        try:
            if fresh:
                from connector.refetch import refetch_orders
                for pull in refetch_orders(settings, copy, sorted({row["order_key"] for row in chosen})):
                    result.refetched.append({"store": pull.store, "fetched": pull.fetched, "changed": pull.changed,
                                             "unchanged": pull.unchanged, "stale": pull.stale,
                                             "rejected": pull.rejected})
            requeue(copy, chosen)
            _run(settings, ledger, copy, chosen, result)
        finally:
            copy.close()
    return result


def _run(settings, ledger: Ledger, copy: Ledger, chosen: list[dict], result: DryRun) -> None:
    recorder = Recorder()
    runners: dict[str, object] = {}
    paused: dict[str, StepError] = {}
    verdicts: dict[tuple[str, str], str] = {}  # (order key, step) -> verdict in this dry run
    order = sorted(chosen, key=lambda r: (KINDS.index(kind_of(r["step"])) if kind_of(r["step"]) in KINDS
                                          else len(KINDS), r["order_key"], r["id"]))
    for row in order:
        shown = StepPreview(row["id"], row["order_key"], row["step"], row["state"], WOULD_FAIL)
        result.steps.append(shown)
        kind, system = kind_of(row["step"]), row["step"].split(".", 1)[0]
        waiting = _unmet(copy, row)
        if waiting:
            shown.verdict = WAITS
            first = {n for n, _ in waiting if verdicts.get((row["order_key"], n)) == WOULD_SEND}
            named = [f"{n} ({state}{', this replay would send it first' if n in first else ''})"
                     for n, state in waiting]
            shown.message = f"runs after {', '.join(named)}"
            shown.what_to_do = ("its own write names what that step creates: replay, then dry-run again to see it"
                                  if first else "replay or fix the steps it waits for first")
            verdicts[(row["order_key"], row["step"])] = WAITS
            continue
        if system in paused:
            shown.verdict, shown.message = PAUSED, str(paused[system])
            shown.what_to_do = paused[system].what_to_do
            verdicts[(row["order_key"], row["step"])] = PAUSED
            continue
        state = copy.conn.execute("SELECT attempts, request_id FROM steps WHERE id = ?", (row["id"],)).fetchone()
        copy.claim([row["id"]])
        recorder.begin()
        try:
            work = Work(row["id"], row["step"], from_json(copy.order_snapshot(row["order_key"])), state[1],
                        state[0] + 1)
            if system not in runners:
                runners[system] = _runner(settings, ledger, copy, system, recorder)
            outcome = runners[system].run(kind, [work])[0]
        except Exception as exc:  # as the engine: a runner bug or outage is this item's failure
            outcome = Outcome(row["id"], "failed", error=exc)
        shown.writes = list(recorder.writes)
        _judge(shown, outcome)
        if shown.verdict == PAUSED:
            paused[system] = outcome.error
        verdicts[(row["order_key"], row["step"])] = shown.verdict
        ended = outcome.error is None and outcome.state in FINAL_STATES
        copy.finish_step(row["id"], outcome.state if ended else "failed")


def _unmet(copy: Ledger, row: dict) -> list[tuple[str, str]]:
    """The step's dependencies that have not ended well in the copy: ``[(step, state)]``."""
    depends = copy.conn.execute("SELECT depends_on FROM steps WHERE id = ?", (row["id"],)).fetchone()[0]
    names = [n for n in (depends or "").split(",") if n]
    if not names:
        return []
    states = dict(copy.conn.execute(
        f"SELECT step, state FROM steps WHERE order_key = ? AND step IN ({','.join('?' * len(names))})",
        (row["order_key"], *names)).fetchall())
    return [(n, states.get(n, "not planned")) for n in names if states.get(n) not in FINAL_STATES]


def _judge(preview: StepPreview, outcome: Outcome) -> None:
    """The verdict of one previewed step, from its outcome and its captured writes."""
    error = outcome.error
    if isinstance(error, WouldSend) or (error is None and preview.writes):
        preview.verdict = WOULD_SEND
        preview.message = "; ".join(w.summary for w in preview.writes if w.operation != "ensure_property") or \
            "; ".join(w.summary for w in preview.writes)
        return
    if error is None:
        preview.verdict = WOULD_SKIP if outcome.state == "skipped" else NOTHING
        preview.message = outcome.response or outcome.note or ("already done" if outcome.state == "done" else None)
        return
    preview.message, preview.what_to_do = str(error), getattr(error, "what_to_do", None) or None
    if isinstance(error, PausedError):
        preview.verdict = PAUSED
    elif isinstance(error, SkippableError):
        preview.verdict = WOULD_SKIP
    elif isinstance(error, PermanentError):
        preview.verdict = WOULD_FAIL
        preview.message = f"{'held for review' if error.code == HELD else 'dead'}: {error}"
    else:
        preview.verdict = WOULD_FAIL
        again = "retried later" if isinstance(error, RetryableError) else "failed"
        preview.message = f"{again}: {error}"
    if preview.writes:  # it got as far as writing some of it (HubSpot: a deal, then a refused line item)
        preview.message += "; before that: " + "; ".join(w.summary for w in preview.writes)
