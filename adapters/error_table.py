"""Every vendor error we know, in one table: retry it, pause, a person must fix it, or skip.

The adapters turn a vendor's answer into one of the intent-typed errors of
:mod:`connector.errors` through these tables only, so what happens to a
QuickBooks fault or a HubSpot category is decided (and documented) here.

Sources: QuickBooks fault codes, ../shared/notes/quickbooks.md §2.6 and §3;
HubSpot categories and statuses, ../shared/notes/hubspot.md §4-5.
"""

from __future__ import annotations

from dataclasses import dataclass

from connector.errors import PausedError, PermanentError, RetryableError, SkippableError, StepError

RETRY, PERMANENT, PAUSE, SKIP = "retry", "permanent", "pause", "skip"
INTENT = {RETRY: RetryableError, PERMANENT: PermanentError, PAUSE: PausedError, SKIP: SkippableError}


@dataclass(frozen=True)
class Entry:
    intent: str
    what_to_do: str


QUICKBOOKS_FAULTS: dict[int, Entry] = {
    100: Entry(PAUSE, "QuickBooks no longer accepts this connection: run `o2c auth quickbooks`"),
    120: Entry(PAUSE, "QuickBooks no longer accepts this connection: run `o2c auth quickbooks`"),
    3200: Entry(PAUSE, "QuickBooks no longer accepts this connection: run `o2c auth quickbooks`"),
    3100: Entry(PERMANENT, "the connected user may not write to this company: reconnect with an admin user"),
    3001: Entry(RETRY, "QuickBooks is throttling (500 requests/min per company); the connector waits"),
    610: Entry(PERMANENT, "a document or customer this step needs was deleted in QuickBooks; replay to look "
                          "it up again, or restore it"),
    2020: Entry(PERMANENT, "a required field is missing: report this mapping bug with the order"),
    2050: Entry(PERMANENT, "a value is longer than QuickBooks allows: shorten it in the store, then replay"),
    2500: Entry(PERMANENT, "a referenced customer, item or account does not exist in QuickBooks: check the "
                           "item and account names in the config, then replay"),
    4000: Entry(PERMANENT, "the connector sent a query QuickBooks cannot read: report this bug"),
    4001: Entry(PERMANENT, "the connector sent a query QuickBooks cannot read: report this bug"),
    # The runner catches 5010, re-reads the document and retries once (or holds it for review);
    # one that escapes means the document keeps changing under us.
    5010: Entry(PERMANENT, "the document changed in QuickBooks meanwhile; check it there, then replay"),
    6000: Entry(PERMANENT, "QuickBooks refused the document (see its message, e.g. a currency not enabled: turn on "
                           "multicurrency and add the currency in QuickBooks), then replay"),
    6070: Entry(PERMANENT, "a line's amount is not quantity x unit price: report this mapping bug"),
    6100: Entry(PERMANENT, "the tax code is not valid for this company: set the tax codes under quickbooks in "
                           "the config, then replay"),
    6140: Entry(PERMANENT, "the document number is already used: change the store's doc_number_prefix, then replay"),
    6190: Entry(PAUSE, "the QuickBooks company is not active (subscription): fix it in QuickBooks"),
    6210: Entry(PERMANENT, "the accounting period is closed: reopen it or move the closing date, then replay"),
    6240: Entry(PERMANENT, "another customer, vendor or employee has this name: rename one in QuickBooks, or change "
                           "quickbooks.display_name_template, then replay"),
    6540: Entry(PERMANENT, "the payment is already deposited: undo the deposit in QuickBooks, then replay"),
    10000: Entry(RETRY, "QuickBooks had an internal error; the connector tries again later"),
}

HUBSPOT_CATEGORIES: dict[str, Entry] = {
    "RATE_LIMIT": Entry(RETRY, "HubSpot's rate limit; the connector waits for the next window"),
    "INVALID_AUTHENTICATION": Entry(PAUSE, "HubSpot rejected the token: put a valid private app or service key "
                                           "token in the variable named by hubspot.access_token"),
    "EXPIRED_AUTHENTICATION": Entry(PAUSE, "the HubSpot token expired: put a new one in the variable named by "
                                           "hubspot.access_token"),
    "MISSING_SCOPES": Entry(PAUSE, "the HubSpot token lacks scopes (contacts, deals, line items write): add them "
                                   "to the app, then update the token"),
    "VALIDATION_ERROR": Entry(PERMANENT, "HubSpot refused a value (see its message): fix the data or the mapping "
                                         "config, then replay"),
    "CONFLICT": Entry(PERMANENT, "HubSpot already holds a record with this unique value: merge or delete the "
                                 "duplicate in HubSpot, then replay"),
    "OBJECT_NOT_FOUND": Entry(PERMANENT, "a HubSpot record this step needs was deleted: replay to recreate it"),
}
RETRY_STATUSES = {423, 429, 477, 500, 502, 503, 504, 524}


def quickbooks_error(code: int | None, message: str, *, status: int | None = None) -> StepError:
    """The intent-typed error for a QuickBooks fault ``code`` (and HTTP ``status``)."""
    entry = QUICKBOOKS_FAULTS.get(code) if code is not None else None
    if entry is None:
        if status in RETRY_STATUSES:
            entry = Entry(RETRY, "QuickBooks is unavailable; the connector tries again later")
        elif status == 401:
            entry = QUICKBOOKS_FAULTS[3200]
        else:
            entry = Entry(PERMANENT, "read QuickBooks' message, correct the data or the config, then replay")
    return INTENT[entry.intent](message, what_to_do=entry.what_to_do, system="quickbooks", status=status,
                                code=str(code) if code is not None else None)


def hubspot_error(status: int | None, category: str | None, message: str) -> StepError:
    """The intent-typed error for a HubSpot answer (HTTP ``status`` and body ``category``)."""
    entry = HUBSPOT_CATEGORIES.get(category or "")
    if entry is None:
        if status is None or status in RETRY_STATUSES:
            entry = HUBSPOT_CATEGORIES["RATE_LIMIT"] if status == 429 else \
                Entry(RETRY, "HubSpot is unavailable; the connector tries again later")
        elif status == 401:
            entry = HUBSPOT_CATEGORIES["INVALID_AUTHENTICATION"]
        elif status == 403:
            entry = HUBSPOT_CATEGORIES["MISSING_SCOPES"]
        elif status == 409:
            entry = HUBSPOT_CATEGORIES["CONFLICT"]
        else:
            entry = Entry(PERMANENT, "read HubSpot's message, fix the data or the config, then replay")
    return INTENT[entry.intent](message, what_to_do=entry.what_to_do, system="hubspot", status=status,
                                code=category)
