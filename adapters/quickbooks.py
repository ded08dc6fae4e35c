"""QuickBooks Online adapter on the official ``python-quickbooks`` SDK.

The client is pointed at the configured API URL (only the base URL
changes, ../shared/notes/quickbooks.md §5) and given our own
``requests.Session`` carrying the access token; responses are parsed with
``use_decimal=True`` so no amount passes through a float. Request bodies
are written by :func:`to_qbo_json`, which emits ``Decimal`` as exact JSON
numbers.

Recovery table:
| what happens                          | what this module does                           |
|---------------------------------------|-------------------------------------------------|
| 429 / 5xx / connection errors         | the session retries, each try in a realm budget slot (a 429 pauses it), then RetryableError |
| 401                                   | refresh the token once and retry, then PermanentError |
| 429 after the session's retries       | RetryableError, retry after 60 s (notes §3: "wait 60 seconds") |
| Fault 6240 Duplicate Name             | the caller finds the existing customer and binds it |
| Fault 5010 Stale Object               | PermanentError code 5010; the caller re-reads and retries once |
| Fault 6000 on a currency              | PermanentError code currency_not_enabled: turn the currency on |
| any other fault                       | adapters/error_table.py decides: retry, pause or PermanentError with what to fix |
| a write whose answer was lost         | the same ``requestid`` is sent again; QuickBooks replays the answer |
| a batch item's Fault                  | the same classification, per item (:meth:`QuickBooksTarget.batch`) |
| an ``IN (...)`` query refused        | PermanentError 4000/4001; customer lookups then use ``=`` |
"""

from __future__ import annotations

import json
import re
from decimal import Decimal
from urllib.parse import urlsplit

import requests
from quickbooks import QuickBooks
from quickbooks.exceptions import AuthorizationException, QuickbooksException
from urllib3.util.retry import Retry

from adapters.quickbooks_auth import TokenVault
from adapters.error_table import quickbooks_error
from connector.errors import PermanentError, RetryableError
from connector.rate_budget import BudgetedHTTPAdapter, budget_for, limits_for

_MARK = "__o2c_decimal__"
_NUMBER = re.compile(r'"' + _MARK + r'(-?[0-9]+(?:\.[0-9]+)?)"')
DUPLICATE_NAME = 6240
STALE_OBJECT = 5010
_LOWER_CODE = re.compile(r'"code"\s*:\s*"?(\d+)"?')
_LOWER_MESSAGE = re.compile(r'"message"\s*:\s*"([^"]*)"')
BATCH_MAX = 30  # notes §2.2: 30 payloads per batch
IN_VALUES = 100  # values per ``IN (...)`` list
IN_CHARS = 8000  # characters of values per ``IN (...)`` list, far below any request-size limit
MAX_RESULTS = 1000  # notes §2.1: MAXRESULTS max
THROTTLE_WAIT = 60  # notes §3: "wait 60 seconds before retrying"


def to_qbo_json(body: dict) -> str:
    """JSON with every ``Decimal`` written as an exact number literal (never via float)."""
    def encode(value):
        if isinstance(value, Decimal):
            return f"{_MARK}{value}"
        raise TypeError(type(value).__name__)
    return _NUMBER.sub(r"\1", json.dumps(body, default=encode, ensure_ascii=False))


def quote(value: str) -> str:
    """Escape a value for the QuickBooks query language (``'`` becomes ``\\'``)."""
    return value.replace("\\", "\\\\").replace("'", "\\'")


def in_lists(values) -> list[str]:
    """``'a', 'b'`` lists for ``IN (...)``, each at most IN_VALUES values and IN_CHARS characters;
    duplicates dropped, order kept."""
    lists, chunk, size = [], [], 0
    for value in dict.fromkeys(values):
        quoted = f"'{quote(value)}'"
        if chunk and (len(chunk) == IN_VALUES or size + len(quoted) > IN_CHARS):
            lists.append(", ".join(chunk))
            chunk, size = [], 0
        chunk.append(quoted)
        size += len(quoted) + 2
    if chunk:
        lists.append(", ".join(chunk))
    return lists


def select_in(query, entity: str, field: str, values, *, also: str = "", select: str = "*") -> list[dict]:
    """Every ``entity`` whose ``field`` is one of ``values``, through ``query(sql)``: one query per
    IN list (:func:`in_lists`), plus a page more whenever one comes back full (1000 rows)."""
    rows: list[dict] = []
    for chunk in in_lists(values):
        start = 1
        while True:
            page = f" STARTPOSITION {start}" if start > 1 else ""
            found = query(f"SELECT {select} FROM {entity} WHERE {field} IN ({chunk}){also}{page} "
                          f"MAXRESULTS {MAX_RESULTS}").get(entity, [])
            rows += found
            if len(found) < MAX_RESULTS:
                break
            start += MAX_RESULTS
    return rows


class QuickBooksTarget:
    """Read and write documents in one QuickBooks Online company."""

    system = "quickbooks"

    def __init__(self, settings, ledger, limits=None):
        self.settings = settings
        self.realm = settings.realm_id
        self.vault = TokenVault(settings, ledger)
        self.calls = 0
        # One budget per realm for the whole process (connector/rate_budget.py); ``limits`` is the
        # config's ``limits:`` section (None: the defaults). Token refreshes go to Intuit's OAuth
        # endpoint through intuitlib, not this session, so they are not charged to the realm.
        self.budget = budget_for("quickbooks", self.realm, limits_for("quickbooks", limits))
        self.batch_budget = budget_for("quickbooks-batch", self.realm, limits_for("quickbooks-batch", limits))
        self._client: QuickBooks | None = None
        self.last_status: int | None = None
        self.last_intuit_tid: str | None = None

    # -- plumbing -----------------------------------------------------------
    def _session(self, token: str) -> requests.Session:
        session = requests.Session()
        session.access_token = token  # python-quickbooks reads the bearer token from here
        # The retry policy; BudgetedHTTPAdapter runs it (not urllib3), so each retry takes its own slot.
        retry = Retry(total=4, status_forcelist=(429, 500, 502, 503, 504), allowed_methods=None,
                      backoff_factor=1.0, respect_retry_after_header=True, raise_on_status=False)
        adapter = BudgetedHTTPAdapter(self._charges, retry)
        session.mount("http://", adapter)
        session.mount("https://", adapter)
        session.hooks["response"].append(self._remember_response)
        return session

    def _charges(self, request) -> list:
        """What one HTTP attempt costs: a batch is one batch request and one call per item (notes §2.2)."""
        if urlsplit(request.url or "").path.rstrip("/").endswith("/batch"):
            try:
                body = request.body.decode("utf-8") if isinstance(request.body, bytes) else request.body
                items = len(json.loads(body).get("BatchItemRequest") or [])
            except (AttributeError, TypeError, ValueError):
                items = 1
            return [(self.batch_budget, 1), (self.budget, max(1, items))]
        return [(self.budget, 1)]

    def _remember_response(self, response, *args, **kwargs):
        self.calls += 1
        self.last_status = response.status_code
        self.last_intuit_tid = response.headers.get("intuit_tid")

    def client(self, *, force_refresh: bool = False) -> QuickBooks:
        if self._client is None or force_refresh:
            qb = QuickBooks(company_id=self.realm, minorversion=self.settings.minor_version, use_decimal=True)
            qb.api_url_v3 = qb.sandbox_api_url_v3 = self.settings.api_url
            qb.session = self._session(self.vault.access_token(force=force_refresh))
            self._client = qb
        return self._client

    def _call(self, fn):
        """Run ``fn(client)``; refresh the token once on 401; classify failures by intent."""
        for attempt in (1, 2):
            try:
                return fn(self.client(force_refresh=attempt == 2))
            except AuthorizationException as exc:
                if exc.error_code == 401 and attempt == 1:
                    continue
                raise PermanentError(f"QuickBooks refused authorisation: {exc.message}", system="quickbooks",
                                     status=401, what_to_do="reconnect QuickBooks, then replay") from exc
            except QuickbooksException as exc:
                raise self._classify(exc) from exc
            except requests.RequestException as exc:
                raise RetryableError(f"QuickBooks could not be reached: {exc}", system="quickbooks") from exc

    def _classify(self, exc: QuickbooksException) -> Exception:
        return classify(exc.error_code, exc.message, exc.detail, self.last_status)

    def query(self, sql: str) -> dict:
        return self._call(lambda qb: qb.query(sql)).get("QueryResponse", {})

    def create(self, entity: str, body: dict, request_id: str) -> dict:
        """Create ``entity`` with a deterministic ``requestid``; return the created object."""
        answer = self._call(lambda qb: qb.create_object(entity, to_qbo_json(body), request_id=request_id))
        return answer[entity]

    def read(self, entity: str, object_id: str) -> dict:
        return self._call(lambda qb: qb.get_single_object(entity, object_id))[entity]

    def update(self, entity: str, body: dict, request_id: str, *, void: bool = False) -> dict:
        """Sparse update (or void) of an existing object; ``body`` carries ``Id`` and ``SyncToken``.

        Void: Invoice ``operation=void``; Payment/SalesReceipt ``include=void`` (notes §0).
        """
        params = None
        if void:
            params = {"operation": "void"} if entity == "Invoice" else {"operation": "update", "include": "void"}
        answer = self._call(lambda qb: qb.update_object(entity, to_qbo_json(body), request_id=request_id,
                                                        params=params))
        return answer[entity]

    def batch(self, items: list[tuple[str, str, dict]], request_id: str) -> dict[str, dict | Exception]:
        """Create up to 30 objects in one call: ``[(bId, entity, body)]`` -> ``{bId: object or error}``.

        The batch carries a deterministic ``requestid`` (≤ 36 chars) and ``bId``s of
        ≤ 10 chars, so a lost answer is replayed, not booked twice (notes §2.2, §2.5).
        python-quickbooks' ``batch_operation`` cannot send a requestid, so the body goes
        through the SDK's own ``post`` with one.
        """
        return self._batch(items, request_id, {"operation": "create"})

    def void_batch(self, items: list[tuple[str, str, dict]], request_id: str) -> dict[str, dict | Exception]:
        """Void up to 30 documents in one call: ``[(bId, entity, {Id, SyncToken, sparse})]``.

        A batch item voids with ``operation: update`` and ``optionsData: void`` (notes §2.2); the
        answer is the document as QuickBooks now holds it (the caller checks it is voided).
        """
        return self._batch(items, request_id, {"operation": "update", "optionsData": "void"})

    def _batch(self, items: list[tuple[str, str, dict]], request_id: str, how: dict) -> dict[str, dict | Exception]:
        if len(items) > BATCH_MAX or len(request_id) > 36 or any(len(b) > 10 for b, _, _ in items):
            raise ValueError("a batch holds at most 30 items, a requestid of 36 and bIds of 10 characters")
        body = {"BatchItemRequest": [{"bId": bid, **how, entity: obj} for bid, entity, obj in items]}

        def send(qb):
            url = f"{qb.api_url}/company/{qb.company_id}/batch"
            return qb.post(url, to_qbo_json(body), request_id=request_id)
        answer = self._call(send)
        results: dict[str, dict | Exception] = {}
        for item in answer.get("BatchItemResponse", []):
            bid = str(item.get("bId"))
            fault = item.get("Fault")
            if fault:
                error = (fault.get("Error") or [{}])[0]
                results[bid] = classify(_int(error.get("code")), error.get("Message", ""), error.get("Detail"), 200)
                continue
            entity = next((e for _, e, _ in items if e in item), None)
            results[bid] = item[entity] if entity else RetryableError(
                f"QuickBooks answered batch item {bid} without an object", system="quickbooks")
        for bid, _, _ in items:
            results.setdefault(bid, RetryableError(f"QuickBooks did not answer batch item {bid}",
                                                   system="quickbooks"))
        return results

    def preferences(self) -> dict:
        return self._call(lambda qb: qb.get(f"{qb.api_url}/company/{qb.company_id}/preferences"))["Preferences"]

    # -- lookups ------------------------------------------------------------
    def find_customer(self, *, email: str | None = None, display_name: str | None = None) -> dict | None:
        """Find a customer, inactive ones included (they still own their DisplayName)."""
        if email:
            where = f"PrimaryEmailAddr = '{quote(email)}'"
        elif display_name:
            where = f"DisplayName = '{quote(display_name)}'"
        else:
            return None
        found = self.query(f"SELECT * FROM Customer WHERE {where} AND Active IN (true, false)")
        customers = found.get("Customer") or []
        return customers[0] if customers else None

    def find_items(self, names: list[str]) -> dict[str, str]:
        """``{name or sku: item id}`` for the items that exist, looked up 100 at a time."""
        found: dict[str, str] = {}
        for field in ("Name", "Sku"):  # by name first, then by SKU for what is left
            left = [n for n in names if n not in found]
            for item in select_in(self.query, "Item", field, left, select="*, Sku"):
                found.setdefault(item["Name"], item["Id"])
                if item.get("Sku"):
                    found.setdefault(item["Sku"], item["Id"])
        return found

    def find_by_doc_number(self, entity: str, doc_number: str) -> dict | None:
        found = self.find_by_doc_numbers(entity, [doc_number])
        return found.get(doc_number)

    def find_by_doc_numbers(self, entity: str, numbers: list[str]) -> dict[str, dict]:
        """``{DocNumber: document}`` for the numbers that exist (one query per 100)."""
        return self._find_in(entity, "DocNumber", numbers)

    def find_payments(self, ref_nums: list[str]) -> list[dict]:
        """Payments whose PaymentRefNum is one of ``ref_nums`` (the probe after a lost answer)."""
        return select_in(self.query, "Payment", "PaymentRefNum", ref_nums)

    def find_named(self, entity: str, name: str) -> dict | None:
        """An Account or PaymentMethod by its name (inactive ones too)."""
        found = self.query(f"SELECT * FROM {entity} WHERE Name = '{quote(name)}'").get(entity) or []
        return found[0] if found else None

    def read_many(self, entity: str, ids: list[str]) -> dict[str, dict]:
        return self._find_in(entity, "Id", ids)

    def _find_in(self, entity: str, field: str, values: list[str]) -> dict[str, dict]:
        found: dict[str, dict] = {}
        for doc in select_in(self.query, entity, field, values):
            found.setdefault(str(doc[field]), doc)
        return found


def _int(value) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def classify(code, message: str, detail: str | None, status: int | None) -> Exception:
    """One QuickBooks error -> an error whose type says what the engine does with it."""
    if code == 10000 and status is not None and 400 <= status < 500 and status != 429:
        # Intuit's lower-case envelope ({"fault": {"error": [...]}}, notes §1.1) is not parsed by
        # python-quickbooks, which raises code 10000 with the body in the message: read the real code.
        match = _LOWER_CODE.search(message or "")
        if match:
            code = int(match.group(1))
            inner = _LOWER_MESSAGE.search(message or "")
            message = inner.group(1) if inner else message
    if status == 429 or code == 3001:
        return RetryableError(f"QuickBooks is throttling this company (HTTP 429): {message}", system="quickbooks",
                              status=429, code="3001", retry_after=THROTTLE_WAIT)
    if code == 10000 or status in (500, 502, 503, 504):
        return RetryableError(f"QuickBooks is unavailable (HTTP {status}): {message}",
                              system="quickbooks", status=status, code=str(code))
    text = f"{message}: {detail}" if detail else message
    if code == 6000 and "currency" in text.lower():
        return PermanentError(f"QuickBooks refused the currency: {text}", system="quickbooks", status=status,
                              code="currency_not_enabled",
                              what_to_do="turn on multicurrency and add this currency in QuickBooks (Account and "
                                         "Settings > Advanced > Currency), or book the store in its shop "
                                         "currency (book_in: shop); then replay")
    # Everything else: the one table of what each QuickBooks fault means (adapters/error_table.py).
    return quickbooks_error(code, f"QuickBooks fault {code}: {text}", status=status)
