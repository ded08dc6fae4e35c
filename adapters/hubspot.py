"""HubSpot CRM adapter on the official ``hubspot-api-client`` SDK.

Contacts are written with ``batch/upsert`` by email, 100 per call, after
de-duplicating emails within the batch (HubSpot rejects two inputs that
resolve to one record; ../shared/notes/hubspot.md §2.1). The SDK only
retries POSTs when ``allowed_methods=None`` (§6); upserts are idempotent, so
retrying them is safe. After each call the ``X-HubSpot-RateLimit-*`` headers
tell how much of the 10-second window is left; when it runs low we wait for
the window rather than collect 429s (§4).

Recovery table:
| what happens                    | what this module does                            |
|---------------------------------|--------------------------------------------------|
| 429 / 5xx                       | urllib3 retries honouring Retry-After, then RetryableError |
| 401                             | PermanentError: the token is wrong or revoked     |
| 400 VALIDATION_ERROR            | PermanentError with HubSpot's message             |
| 207 partial                     | per-contact results; failed emails get the error  |
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass

from hubspot import HubSpot
from hubspot.crm.contacts import BatchInputSimplePublicObjectBatchInputUpsert, SimplePublicObjectBatchInputUpsert
from urllib3.util.retry import Retry

from connector.errors import PermanentError, RetryableError

BATCH_LIMIT = 100


@dataclass(frozen=True)
class ContactResult:
    email: str
    contact_id: str | None
    created: bool = False
    error: Exception | None = None


class HubSpotTarget:
    """Write contacts (and later deals and line items) to one HubSpot account."""

    system = "hubspot"

    def __init__(self, settings):
        self.calls = 0
        self.timeout = settings.timeout_seconds
        self._client = HubSpot(
            access_token=settings.access_token.get_secret_value(),
            host=settings.host,
            retry=Retry(total=5, status_forcelist=(429, 500, 502, 503, 504), allowed_methods=None,
                        backoff_factor=0.5, raise_on_status=False, respect_retry_after_header=True),
        )

    def upsert_contacts(self, contacts: dict[str, dict[str, str]]) -> dict[str, ContactResult]:
        """Upsert ``{email: properties}``; return a result per email."""
        results: dict[str, ContactResult] = {}
        emails = sorted(contacts)
        for start in range(0, len(emails), BATCH_LIMIT):
            chunk = emails[start:start + BATCH_LIMIT]
            results.update(self._upsert_chunk(chunk, contacts))
        return results

    def _upsert_chunk(self, emails: list[str], contacts: dict[str, dict[str, str]]) -> dict[str, ContactResult]:
        body = BatchInputSimplePublicObjectBatchInputUpsert(inputs=[
            SimplePublicObjectBatchInputUpsert(id=email, id_property="email", properties=contacts[email])
            for email in emails
        ])
        self.calls += 1
        try:
            data, status, headers = self._client.crm.contacts.batch_api.upsert_with_http_info(
                body, _request_timeout=(5, self.timeout))
        except Exception as exc:  # each SDK package has its own ApiException class (notes §6)
            error = _classify(exc)
            return {email: ContactResult(email, None, error=error) for email in emails}
        self._pace(headers)
        results = {}
        for record in data.results or []:
            email = (record.properties or {}).get("email") or record.id
            results[email.lower()] = ContactResult(email.lower(), record.id, bool(getattr(record, "new", False)))
        for error in getattr(data, "errors", None) or []:
            failed = [v for values in (error.context or {}).values() for v in values] or emails
            for email in failed:
                if email.lower() in contacts and email.lower() not in results:
                    results[email.lower()] = ContactResult(email.lower(), None, error=PermanentError(
                        f"HubSpot refused contact {email}: {error.message}", system="hubspot",
                        code=error.category, what_to_do="correct the contact data in the store, then replay"))
        for email in emails:
            results.setdefault(email, ContactResult(email, None, error=RetryableError(
                f"HubSpot did not return contact {email} in the batch answer", system="hubspot")))
        return results

    @staticmethod
    def _pace(headers) -> None:
        """Wait out the rest of the 10-second window when (almost) nothing is left of it."""
        if not headers:
            return
        remaining = headers.get("X-HubSpot-RateLimit-Remaining")
        interval = headers.get("X-HubSpot-RateLimit-Interval-Milliseconds")
        if remaining is not None and interval and int(remaining) <= 1:
            time.sleep(int(interval) / 1000)


def _classify(exc: Exception) -> Exception:
    status = getattr(exc, "status", None)
    body = getattr(exc, "body", None)
    try:
        message = json.loads(body).get("message") if body else str(exc)
    except (ValueError, AttributeError):
        message = str(body)[:300]
    if status == 401:
        return PermanentError(f"HubSpot rejected the access token: {message}", system="hubspot", status=401,
                              what_to_do="check hubspot.access_token (a private app or service key token)")
    if status in (None, 429) or (status and status >= 500):
        return RetryableError(f"HubSpot is unavailable or rate limiting: {message}", system="hubspot",
                              status=status)
    return PermanentError(f"HubSpot refused the request (HTTP {status}): {message}", system="hubspot",
                          status=status, what_to_do="read HubSpot's message; fix the data or mapping, then replay")
