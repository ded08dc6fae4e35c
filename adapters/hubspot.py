"""HubSpot CRM adapter on the official ``hubspot-api-client`` 12.0.0 SDK.

Objects are written with ``batch/upsert`` by a unique property (contacts by
email, deals and line items by the connector's own keys), 100 inputs per call
(../shared/notes/hubspot.md §3). Every input carries an ``objectWriteTraceId``
(its key), so one bad input gives a 207 naming it instead of failing the whole
batch (§2.1, HubSpot error-handling docs); the errors are matched back to keys.
The SDK only retries POSTs when ``allowed_methods=None`` (§6); upserts, updates
and association creates are idempotent, so retrying them is safe. After each
call the ``X-HubSpot-RateLimit-*`` headers tell how much of the 10-second window
is left; when it runs low we wait for the window rather than collect 429s (§4).
Search has its own 5 requests/s limit and no headers, so it is paced here.

The API path is configurable (§0: v3/v4 are "legacy"): ``api_version: 2026-03``
rewrites the SDK's ``/crm/v3/objects`` to ``/crm/objects/2026-03`` and so on.

Recovery table:
| what happens                    | what this module does                                      |
|---------------------------------|------------------------------------------------------------|
| 429 / 5xx                       | retried in `_send` (each try budgeted), honouring Retry-After, then RetryableError |
| 401 / 403                       | PermanentError: the token is wrong, revoked or lacks a scope |
| 409 CONFLICT                    | PermanentError naming the record that already holds the value |
| 400 VALIDATION_ERROR            | PermanentError with HubSpot's message                      |
| 207 partial                     | a result per key; failed keys carry HubSpot's error         |
| key missing from the answer     | RetryableError for that key (the next attempt upserts again) |
"""

from __future__ import annotations

import importlib
import json
import threading
import time
from dataclasses import dataclass

from hubspot import HubSpot
from hubspot.discovery.discovery_base import DiscoveryBase
from urllib3.exceptions import HTTPError as TransportError
from urllib3.util.retry import Retry

from adapters.error_table import hubspot_error
from connector.errors import PermanentError, RetryableError
from connector.rate_budget import (account_key, backoff_seconds, budget_for, limits_for, retries_of,
                                   retry_after_seconds)

BATCH_LIMIT = 100  # notes §3: 101 inputs give 400 VALIDATION_ERROR
PACKAGES = {"contacts": "hubspot.crm.contacts", "deals": "hubspot.crm.deals", "line_items": "hubspot.crm.line_items"}
# Notes §2.4, SDK constants: deal->contact 3, contact->deal 4, deal->line_item 19, line_item->deal 20.
DEAL_TO_CONTACT, DEAL_TO_LINE_ITEM = 3, 19
RETRYABLE_CATEGORIES = {"RATE_LIMIT", "RATE_LIMITS", "INTERNAL_ERROR", "SERVICE_UNAVAILABLE", "TIMEOUT", "LOCKED"}


# The SDK packages whose models this module builds or receives.
MODEL_PACKAGES = (*PACKAGES.values(), "hubspot.crm.associations.v4")


def share_model_configurations() -> None:
    """Let every model of the SDK's packages share one ``Configuration`` per package.

    A generated model built without ``local_vars_configuration`` (ours, and every one the SDK makes
    from an answer) asks ``Configuration.get_default_copy()``, which builds a new Configuration: it
    sets its loggers' levels, and each ``setLevel`` clears every logger's cache under logging's global
    lock. That was a third of the connector's CPU in the engine profile (42,668 Configurations for the
    associations of 1,000 orders; benchmarks/RESULTS.md §2). Models only read the configuration's
    ``client_side_validation``, so one shared instance per package serves them all.
    """
    for package in MODEL_PACKAGES:
        configuration = importlib.import_module(package).Configuration
        if not getattr(configuration, "_o2c_shared", False):
            shared = configuration()
            configuration.get_default_copy = classmethod(lambda _cls, shared=shared: shared)
            configuration._o2c_shared = True


@dataclass(frozen=True)
class WriteResult:
    """How one keyed input of a batch ended."""

    key: str
    object_id: str | None
    created: bool = False
    error: Exception | None = None


def path_rewriter(api_version: str):
    """An SDK ``api_factory`` sending the legacy paths to a date-versioned API (notes §0)."""
    if api_version == "legacy":
        return None
    moves = (("/crm/v3/objects/", f"/crm/objects/{api_version}/"),
             ("/crm/v3/properties/", f"/crm/properties/{api_version}/"),
             ("/crm/v3/pipelines/", f"/crm/pipelines/{api_version}/"),
             ("/crm/v4/associations/", f"/crm/associations/{api_version}/"))

    def factory(package, api_name, config):
        api = DiscoveryBase._default_api_factory(package, api_name, config)
        client, send = api.api_client, api.api_client.request

        def request(method, url, *args, **kwargs):
            for old, new in moves:
                if old in url:
                    url = url.replace(old, new, 1)
                    break
            return send(method, url, *args, **kwargs)

        client.request = request
        return api

    return factory


# Typed SDK APIs by (host, token's hash, API version, path), for the whole process. Each discovery
# lookup builds a Configuration, an ApiClient and a connection pool, and workers build their targets
# for every pass. The APIs hold no per-call state (urllib3's pool is thread-safe), so threads share
# them. (The models' Configurations were the costly part: see share_model_configurations.)
_SHARED_APIS: dict[tuple, object] = {}
_SHARED_GUARD = threading.Lock()


class HubSpotTarget:
    """Write contacts, deals, line items and associations to one HubSpot account."""

    system = "hubspot"

    def __init__(self, settings, limits=None):
        self.calls = 0
        self.timeout = settings.timeout_seconds
        self._apis: dict[tuple, object] = {}
        token = settings.access_token.get_secret_value()
        # One budget per app (token) for the whole process, search its own (connector/rate_budget.py);
        # ``limits`` is the config's ``limits:`` section (None: the defaults). The key never holds the token.
        account = getattr(settings, "portal_id", None) or account_key(token)
        self.budget = budget_for("hubspot", account, limits_for("hubspot", limits))
        self.search_budget = budget_for("hubspot-search", account, limits_for("hubspot-search", limits))
        # The in-request retry policy: _send runs it so that every try takes a slot; urllib3 must not retry.
        self._retry = Retry(total=5, status_forcelist=(429, 500, 502, 503, 504), allowed_methods=None,
                            backoff_factor=0.5, raise_on_status=False, respect_retry_after_header=True)
        share_model_configurations()
        self._client_key = (settings.host, account_key(token), getattr(settings, "api_version", "legacy"))
        self._token = token

    def _api(self, *path: str):
        """A typed SDK API, built once per process and shared by its targets (see :data:`_SHARED_APIS`)."""
        if path not in self._apis:
            key = (*self._client_key, path)
            with _SHARED_GUARD:
                if key not in _SHARED_APIS:
                    api = HubSpot(access_token=self._token, host=self._client_key[0], retry=Retry(0, read=False),
                                  api_factory=path_rewriter(self._client_key[2])).crm
                    for part in path:
                        api = getattr(api, part)
                    _SHARED_APIS[key] = api
                self._apis[path] = _SHARED_APIS[key]
        return self._apis[path]

    def _send(self, call, *args, budget=None, raw=False, **kwargs):
        """One API call (counted once): every try takes a slot of ``budget`` (the account's by default).

        ``raw=True`` returns the answer's JSON as plain dicts (the SDK's documented
        ``_preload_content=False``) instead of the SDK's models. The batch writes use it: building
        models of their answers parsed every record's three timestamps with dateutil, an eighth of
        the connector's CPU per order, for values the connector never reads.

        429, 5xx and transport errors are retried here, not in urllib3, so retries are budgeted too:
        Retry-After or the backoff, a 429 pausing the budget for everyone; a DAILY 429 is not retried
        (notes §4). The rate headers of every answer feed the budget (:meth:`_pace`).
        """
        self.calls += 1
        budget = budget or self.budget
        tries = 1 + retries_of(self._retry)
        for attempt in range(1, tries + 1):
            with budget.slot():
                try:
                    if raw:
                        data, headers = _raw_answer(call(*args, _request_timeout=(5, self.timeout),
                                                         _preload_content=False, **kwargs))
                    else:
                        data, _status, headers = call(*args, _request_timeout=(5, self.timeout), **kwargs)
                except Exception as exc:  # each SDK package has its own ApiException class (notes §6)
                    failure = exc
                else:
                    failure = None
            if failure is None:
                self._pace(headers, budget)
                return data
            status = getattr(failure, "status", None)
            headers = getattr(failure, "headers", None) or {}
            self._pace(headers, budget)
            daily = status == 429 and "daily" in str(getattr(failure, "body", "") or "").lower()
            if attempt == tries or daily or not (isinstance(failure, TransportError)
                                                 or status in self._retry.status_forcelist):
                raise failure
            wait = retry_after_seconds(headers.get("Retry-After"))
            wait = backoff_seconds(self._retry, attempt) if wait is None else wait
            if wait > budget.limits.max_wait:
                raise failure  # the ledger retries the step later
            if status == 429:
                budget.penalise(wait)  # the next try waits for it in its slot, and so does everyone else
            else:
                time.sleep(wait)
        raise AssertionError("unreachable")  # pragma: no cover

    # -- objects ------------------------------------------------------------
    def upsert(self, object_type: str, records: dict[str, dict[str, str]], id_property: str) -> dict[str, WriteResult]:
        """Upsert ``{key: properties}`` by the unique ``id_property``; a result per key."""
        return self._write(object_type, records, id_property, "upsert")

    def update(self, object_type: str, records: dict[str, dict[str, str]], id_property: str) -> dict[str, WriteResult]:
        """Update existing records found by the unique ``id_property``; a result per key."""
        return self._write(object_type, records, id_property, "update")

    def _write(self, object_type, records, id_property, op) -> dict[str, WriteResult]:
        keys = list(dict.fromkeys(records))
        results: dict[str, WriteResult] = {}
        for start in range(0, len(keys), BATCH_LIMIT):
            results.update(self._write_chunk(object_type, keys[start:start + BATCH_LIMIT], records, id_property, op))
        return results

    def _write_chunk(self, object_type, keys, records, id_property, op) -> dict[str, WriteResult]:
        models = importlib.import_module(PACKAGES[object_type])
        if op == "upsert":
            body = models.BatchInputSimplePublicObjectBatchInputUpsert(inputs=[
                models.SimplePublicObjectBatchInputUpsert(id=key, id_property=id_property, properties=records[key],
                                                          object_write_trace_id=key) for key in keys])
            call = self._api(object_type, "batch_api").upsert_with_http_info
        else:
            body = models.BatchInputSimplePublicObjectBatchInput(inputs=[
                models.SimplePublicObjectBatchInput(id=key, id_property=id_property, properties=records[key],
                                                    object_write_trace_id=key) for key in keys])
            call = self._api(object_type, "batch_api").update_with_http_info
        try:
            data = self._send(call, body, raw=True)
        except Exception as exc:  # each SDK package has its own ApiException class (notes §6)
            error = classify(exc, object_type)
            return {key: WriteResult(key, None, error=error) for key in keys}
        wanted = {_fold(object_type, id_property, k): k for k in keys}
        results: dict[str, WriteResult] = {}
        for record in data.get("results") or []:
            trace = record.get("objectWriteTraceId")
            value = (record.get("properties") or {}).get(id_property) or ""
            key = trace if trace in records else wanted.get(_fold(object_type, id_property, value))
            if key is not None:
                results[key] = WriteResult(key, str(record["id"]), bool(record.get("new", False)))
        for error in data.get("errors") or []:
            for key in _error_keys(error, keys, wanted, object_type, id_property):
                if key not in results:
                    results[key] = WriteResult(key, None, error=_item_error(error, object_type, key))
        for key in keys:
            results.setdefault(key, WriteResult(key, None, error=RetryableError(
                f"HubSpot did not return {object_type} {key} in the batch answer", system="hubspot")))
        return results

    # -- properties and pipelines --------------------------------------------
    def ensure_property(self, object_type: str, name: str, label: str, *, unique: bool = False,
                        number: bool = False) -> None:
        """Create the custom property ``name`` unless it exists (409 = created meanwhile: fine)."""
        core = self._api("properties", "core_api")
        try:
            definition = self._send(core.get_by_name_with_http_info, object_type, name)
        except Exception as exc:
            if getattr(exc, "status", None) != 404:
                raise classify(exc, object_type) from None
        else:
            if unique and not definition.has_unique_value:
                raise PermanentError(
                    f"the HubSpot {object_type} property '{name}' exists but does not require unique values, so "
                    "the connector cannot upsert by it", system="hubspot", code="non_unique_property",
                    what_to_do=f"name another property in the hubspot settings (it will be created), or recreate "
                               f"'{name}' with 'require unique values' on")
            return
        from hubspot.crm.properties import PropertyCreate
        group = {"contacts": "contactinformation", "deals": "dealinformation"}.get(object_type, "lineiteminformation")
        create = PropertyCreate(name=name, label=label, type="number" if number else "string",
                                field_type="number" if number else "text", group_name=group,
                                has_unique_value=unique, description="Written by o2c-connector")
        try:
            self._send(core.create_with_http_info, object_type, create)
        except Exception as exc:
            if getattr(exc, "status", None) != 409:
                raise classify(exc, object_type) from None

    def deal_pipelines(self) -> dict[str, list[str]]:
        """``{pipeline id: [stage ids]}`` of the account's deal pipelines."""
        try:
            data = self._send(self._api("pipelines", "pipelines_api").get_all_with_http_info, "deals")
        except Exception as exc:
            raise classify(exc, "deal pipelines") from None
        return {p.id: [s.id for s in p.stages or []] for p in data.results or []}

    # -- search ---------------------------------------------------------------
    def find_contact_by_phone(self, phone: str) -> str | None:
        """The oldest contact whose ``phone`` equals ``phone``, or None."""
        from hubspot.crm.contacts import Filter, FilterGroup, PublicObjectSearchRequest
        request = PublicObjectSearchRequest(
            filter_groups=[FilterGroup(filters=[Filter(property_name="phone", operator="EQ", value=phone)])],
            properties=["email", "phone"], sorts=["createdate"], limit=1)
        try:  # search has its own budget (5/s per account, notes §4), shared with every other search
            data = self._send(self._api("contacts", "search_api").do_search_with_http_info, request,
                              budget=self.search_budget)
        except Exception as exc:
            raise classify(exc, "contacts") from None
        return data.results[0].id if data.results else None

    def read_by_property(self, object_type: str, id_property: str, values: list[str],
                         properties: list[str]) -> dict[str, dict]:
        """Read records by a unique property (``batch/read`` with ``idProperty``), 100 per call.

        Returns ``{value: {"id": record id, "properties": {name: value}}}`` for the values
        HubSpot holds (``properties`` plus ``id_property``); a value no record has is left
        out. Reads only: ``o2c replay --dry-run`` compares what it would send with this.
        """
        models = importlib.import_module(PACKAGES[object_type])
        wanted = {_fold(object_type, id_property, v): v for v in dict.fromkeys(values)}
        names = list(dict.fromkeys([id_property, *properties]))
        found: dict[str, dict] = {}
        keys = list(wanted.values())
        for start in range(0, len(keys), BATCH_LIMIT):
            body = models.BatchReadInputSimplePublicObjectId(
                id_property=id_property, properties=names, properties_with_history=[],
                inputs=[models.SimplePublicObjectId(id=key) for key in keys[start:start + BATCH_LIMIT]])
            try:
                data = self._send(self._api(object_type, "batch_api").read_with_http_info, body)
            except Exception as exc:
                if getattr(exc, "status", None) == 404:
                    continue  # none of them exists
                raise classify(exc, object_type) from None
            for record in data.results or []:
                props = record.properties or {}
                key = wanted.get(_fold(object_type, id_property, props.get(id_property) or ""))
                if key is not None:
                    found[key] = {"id": record.id, "properties": {n: props.get(n) for n in names}}
        return found

    # -- associations v4 ----------------------------------------------------------
    def associate(self, from_type: str, to_type: str, type_id: int,
                  pairs: list[tuple[str, str]]) -> dict[tuple[str, str], Exception | None]:
        """Create typed associations in batches of 100; ``{(from id, to id): None or the error}``."""
        from hubspot.crm.associations.v4 import (AssociationSpec, BatchInputPublicAssociationMultiPost,
                                                 PublicAssociationMultiPost, PublicObjectId)
        pairs = list(dict.fromkeys(pairs))
        outcome: dict[tuple[str, str], Exception | None] = {}
        api = self._api("associations", "v4", "batch_api")
        for start in range(0, len(pairs), BATCH_LIMIT):
            chunk = pairs[start:start + BATCH_LIMIT]
            body = BatchInputPublicAssociationMultiPost(inputs=[PublicAssociationMultiPost(
                _from=PublicObjectId(id=a), to=PublicObjectId(id=b),
                types=[AssociationSpec(association_category="HUBSPOT_DEFINED", association_type_id=type_id)])
                for a, b in chunk])
            try:
                data = self._send(api.create_with_http_info, from_type, to_type, body, raw=True)
            except Exception as exc:
                error = classify(exc, "associations")
                outcome.update({pair: error for pair in chunk})
                continue
            outcome.update({pair: None for pair in chunk})
            for error in data.get("errors") or []:
                named = {str(v) for values in (error.get("context") or {}).values() for v in values}
                hit = [p for p in chunk if p[0] in named or p[1] in named] or chunk
                for pair in hit:
                    outcome[pair] = _item_error(error, f"{from_type}->{to_type} association", f"{pair[0]}->{pair[1]}")
        return outcome

    def _pace(self, headers, budget=None) -> None:
        """Tell the budget what HubSpot says is left of the 10-second window (notes §4).

        The budget believes the vendor when it says fewer remain (other clients of the app) and
        takes ``Max`` when it is below the configured limit. Search answers carry no headers.
        """
        if not headers:
            return

        def number(name):
            try:
                return int(headers.get(name))
            except (TypeError, ValueError):
                return None
        remaining, maximum = number("X-HubSpot-RateLimit-Remaining"), number("X-HubSpot-RateLimit-Max")
        if remaining is not None or maximum is not None:
            (budget or self.budget).observe(remaining=remaining, limit=maximum,
                                            window_ms=number("X-HubSpot-RateLimit-Interval-Milliseconds"))


def _fold(object_type: str, id_property: str, value: str) -> str:
    # HubSpot stores and compares contact emails lower-cased (notes §2.1).
    return value.strip().lower() if object_type == "contacts" and id_property == "email" else value


def _raw_answer(response) -> tuple[dict, dict]:
    """(JSON body as dicts, headers) of an SDK call made with ``_preload_content=False``."""
    try:
        body = response.data
    finally:
        response.release_conn()  # not preloaded: the connection goes back to the pool only when told
    return (json.loads(body) if body else {}), response.headers


def _error_keys(error: dict, keys, wanted, object_type, id_property) -> list[str]:
    """The keys a 207 error (the answer's JSON) is about: by ``objectWriteTraceId`` or id in its context,
    else all."""
    context = error.get("context") or {}
    named = [v for name in ("objectWriteTraceId", "ids", "id") for v in context.get(name) or []]
    found = [wanted[_fold(object_type, id_property, v)] for v in named if _fold(object_type, id_property, v) in wanted]
    return found or list(keys)


def _item_error(error: dict, what: str, key: str) -> Exception:
    category = error.get("category") or ""
    message = f"HubSpot refused {what} {key}: {error.get('message')}"
    if category in RETRYABLE_CATEGORIES:
        return RetryableError(message, system="hubspot", code=category)
    return PermanentError(message, system="hubspot", code=category or None,
                          what_to_do="correct what HubSpot names (the order's data, or the hubspot settings "
                                     "such as deal_stages), then replay")


def classify(exc: Exception, what: str = "request") -> Exception:
    """An SDK or transport exception -> the connector's error with its intent (recovery table)."""
    status = getattr(exc, "status", None)
    body = getattr(exc, "body", None)
    try:
        parsed = json.loads(body) if body else {}
        message = parsed.get("message") or str(exc)
        category = parsed.get("category") or parsed.get("errorType")
    except (ValueError, AttributeError, TypeError):
        message, category = (str(body)[:300] if body else str(exc)), None
    if status == 401:  # pause, don't burn retries: nothing works until the token is replaced
        return hubspot_error(401, category if category in ("EXPIRED_AUTHENTICATION", "INVALID_AUTHENTICATION")
                             else "INVALID_AUTHENTICATION", f"HubSpot rejected the access token: {message}")
    if status == 403:
        return PermanentError(f"HubSpot refused access ({what}): {message}", system="hubspot", status=403,
                              code=category, what_to_do="give the app the crm.objects contacts, deals and "
                              "line_items read/write scopes (and crm.schemas read/write for properties), then replay")
    if status == 409:
        return PermanentError(f"HubSpot reports a conflict writing {what}: {message}", system="hubspot", status=409,
                              code=category or "CONFLICT",
                              what_to_do="another HubSpot record already holds this unique value (email or order "
                                         "key): merge or delete the duplicate in HubSpot, then replay")
    if status in (None, 429) or (status and status >= 500):
        retry_after = None
        headers = getattr(exc, "headers", None) or {}
        try:
            retry_after = float(headers.get("Retry-After")) if headers.get("Retry-After") else None
        except (TypeError, ValueError):
            pass
        if status == 429 and "daily" in str(message).lower():
            retry_after = max(retry_after or 0, 3600)  # notes §4: DAILY is not retried until the reset
        return RetryableError(f"HubSpot is unavailable or rate limiting ({what}): {message}", system="hubspot",
                              status=status, retry_after=retry_after)
    # Everything else: the one table of what each HubSpot category means (adapters/error_table.py).
    return hubspot_error(status, category, f"HubSpot refused {what} (HTTP {status}): {message}")
