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
| 429 / 5xx / connection errors         | the session retries (urllib3, Retry-After), then RetryableError |
| 401                                   | refresh the token once and retry, then PermanentError |
| Fault 6240 Duplicate Name             | the caller finds the existing customer and binds it |
| Fault 2000-6999 (validation)          | PermanentError with QuickBooks' message and what to fix |
| a write whose answer was lost         | the same ``requestid`` is sent again; QuickBooks replays the answer |
"""

from __future__ import annotations

import json
import re
from decimal import Decimal

import requests
from quickbooks import QuickBooks
from quickbooks.exceptions import AuthorizationException, QuickbooksException
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

from adapters.quickbooks_auth import TokenVault
from connector.errors import PermanentError, RetryableError

_MARK = "__o2c_decimal__"
_NUMBER = re.compile(r'"' + _MARK + r'(-?[0-9]+(?:\.[0-9]+)?)"')
DUPLICATE_NAME = 6240


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


class QuickBooksTarget:
    """Read and write documents in one QuickBooks Online company."""

    system = "quickbooks"

    def __init__(self, settings, ledger):
        self.settings = settings
        self.realm = settings.realm_id
        self.vault = TokenVault(settings, ledger)
        self.calls = 0
        self._client: QuickBooks | None = None
        self.last_status: int | None = None
        self.last_intuit_tid: str | None = None

    # -- plumbing -----------------------------------------------------------
    def _session(self, token: str) -> requests.Session:
        session = requests.Session()
        session.access_token = token  # python-quickbooks reads the bearer token from here
        retry = Retry(total=4, status_forcelist=(429, 500, 502, 503, 504), allowed_methods=None,
                      backoff_factor=1.0, respect_retry_after_header=True, raise_on_status=False)
        session.mount("http://", HTTPAdapter(max_retries=retry))
        session.mount("https://", HTTPAdapter(max_retries=retry))
        session.hooks["response"].append(self._remember_response)
        return session

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
        code = exc.error_code
        status = self.last_status
        if code == 10000 or status in (429, 500, 502, 503, 504):
            return RetryableError(f"QuickBooks is unavailable or throttling (HTTP {status}): {exc.message}",
                                  system="quickbooks", status=status, code=str(code))
        detail = f"{exc.message}: {exc.detail}" if exc.detail else exc.message
        return PermanentError(f"QuickBooks fault {code}: {detail}", system="quickbooks", status=status,
                              code=str(code), what_to_do=_what_to_do(code))

    def query(self, sql: str) -> dict:
        return self._call(lambda qb: qb.query(sql)).get("QueryResponse", {})

    def create(self, entity: str, body: dict, request_id: str) -> dict:
        """Create ``entity`` with a deterministic ``requestid``; return the created object."""
        answer = self._call(lambda qb: qb.create_object(entity, to_qbo_json(body), request_id=request_id))
        return answer[entity]

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
        for start in range(0, len(names), 100):
            chunk = names[start:start + 100]
            values = ", ".join(f"'{quote(n)}'" for n in chunk)
            for item in self.query(f"SELECT * FROM Item WHERE Name IN ({values}) MAXRESULTS 1000").get("Item", []):
                found[item["Name"]] = item["Id"]
                if item.get("Sku"):
                    found.setdefault(item["Sku"], item["Id"])
        return found

    def find_by_doc_number(self, entity: str, doc_number: str) -> dict | None:
        found = self.query(f"SELECT * FROM {entity} WHERE DocNumber = '{quote(doc_number)}'")
        docs = found.get(entity) or []
        return docs[0] if docs else None


def _what_to_do(code) -> str:
    hints = {
        2500: "a referenced customer or item no longer exists in QuickBooks; replay to look it up again",
        6070: "a line's amount is not quantity x unit price; report this mapping bug",
        6140: "the document number is already used in QuickBooks; change the store's doc_number_prefix",
        6240: "another customer, vendor or employee has this name; rename one in QuickBooks, then replay",
        6190: "the QuickBooks company is not active (subscription); fix it in QuickBooks, then replay",
        6210: "the accounting period is closed; reopen it or change the closing date, then replay",
    }
    return hints.get(code if isinstance(code, int) else -1,
                     "read QuickBooks' message, correct the data or the config, then replay")
