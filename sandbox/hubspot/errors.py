"""HubSpot error bodies and the JSON response helper.

Every body here follows ``shared/notes/hubspot.md`` §5 (the ``Error`` shape:
status, message, correlationId, category, optional context/errors) or §4 (429
bodies, which carry ``errorType``/``policyName`` and *no* ``category``).
Handlers raise :class:`HubSpotError`; the app turns it into a response.
"""

from __future__ import annotations

import json
import uuid

from starlette.responses import Response

# Notes §2.1: HubSpot answers ``application/json;charset=utf-8``.
CONTENT_TYPE = "application/json;charset=utf-8"

BATCH_LIMIT = 100
BATCH_TOO_LARGE = ("The maximum number of inputs supported in a batch is 100. "
                   "Please reduce the number of items and try again")


def correlation_id() -> str:
    """A fresh correlationId, as every real error body has one."""
    return str(uuid.uuid4())


def json_response(body, status: int = 200, headers: dict | None = None) -> Response:
    """Serialize ``body`` compactly with HubSpot's content type."""
    content = b"" if body is None else json.dumps(body, separators=(",", ":")).encode()
    return Response(content, status_code=status, headers=headers, media_type=CONTENT_TYPE)


def error_body(message: str, category: str, context: dict | None = None, **extra) -> dict:
    """An ``Error`` body (notes §5); ``context`` values are lists of strings."""
    body = {"status": "error", "message": message, "correlationId": correlation_id(), "category": category}
    if context is not None:
        body["context"] = context
    body.update(extra)
    return body


class HubSpotError(Exception):
    """An error answer: HTTP status plus body. Raised anywhere, rendered by the app."""

    def __init__(self, status: int, body: dict):
        super().__init__(body.get("message"))
        self.status = status
        self.body = body


def validation(message: str, context: dict | None = None) -> HubSpotError:
    return HubSpotError(400, error_body(message, "VALIDATION_ERROR", context))


def batch_too_large() -> HubSpotError:
    """Fixture ``errors.400.batch_too_large.json`` (notes §3), fresh correlationId."""
    return validation(BATCH_TOO_LARGE)


def check_batch_size(inputs) -> None:
    """Notes §3: the spec declares no maxItems; HubSpot enforces 100 itself."""
    if not isinstance(inputs, list):
        raise validation("Invalid input JSON: `inputs` must be an array")
    if len(inputs) > BATCH_LIMIT:
        raise batch_too_large()


def duplicate_ids(ids: list[str]) -> HubSpotError:
    """Two inputs resolving to one record (notes §2.1).

    Wording and ``context.ids`` as in a recorded real 400 kept in
    rudderlabs/rudder-transformer's HubSpot test data.
    """
    listed = ", ".join(ids)
    return validation(f"Duplicate IDs found in batch input: [{listed}]. IDs must be unique", {"ids": ids})


def property_problem(name: str, message: str, code: str) -> dict:
    """One entry of the JSON list embedded in a PROPERTY_DOESNT_EXIST-style message."""
    return {"isValid": False, "message": message, "error": code, "name": name}


def property_values_invalid(problems: list[dict]) -> dict:
    """Body of fixture ``errors.400.property_doesnt_exist.json`` (embedded JSON list, notes §5)."""
    embedded = json.dumps(problems, separators=(",", ":"))
    return error_body(f"Property values were not valid: {embedded}", "VALIDATION_ERROR")


def non_unique_id_property(type_id: str, prop: str, portal_id: str) -> HubSpotError:
    """Fixture ``errors.400.non_unique_id_property.json`` (hubspot-api-nodejs#548)."""
    return validation(f"Unable to perform update/upsert by non-unique {type_id} property {prop} "
                      f"in portal ID {portal_id}")


def conflict(label: str, existing_id: str) -> HubSpotError:
    """Fixture ``contacts.create.response.409.json`` (verbatim in hubspot-api-nodejs#545)."""
    return HubSpotError(409, error_body(f"{label} already exists. Existing ID: {existing_id}", "CONFLICT"))


def not_found(message: str = "Object not found.") -> HubSpotError:
    return HubSpotError(404, error_body(message, "OBJECT_NOT_FOUND"))


def unauthorized() -> HubSpotError:
    """401 for a missing or wrong Bearer token (notes §1, §5 INVALID_AUTHENTICATION)."""
    return HubSpotError(401, error_body(
        "Authentication credentials not found. This API supports OAuth 2.0 authentication and you can find "
        "more details at https://developers.hubspot.com/docs/methods/auth/oauth-overview",
        "INVALID_AUTHENTICATION"))


def standard_error(category: str, message: str, context: dict | None = None) -> dict:
    """A ``StandardError`` inside a 207 body.

    The SDK model requires status, category, message, context, errors and
    links (notes §2.1), so empty ``links``/``errors`` are always sent.
    """
    return {"status": "error", "category": category, "message": message,
            "context": context or {}, "links": {}, "errors": []}


def ten_secondly_rolling(account_id: str) -> dict:
    """Fixture ``errors.429.ten_secondly_rolling.json`` (verbatim, hubspot-api-python#117)."""
    return {"status": "error", "message": "You have reached your ten_secondly_rolling limit.",
            "errorType": "RATE_LIMIT", "correlationId": correlation_id(),
            "policyName": "TEN_SECONDLY_ROLLING",
            "groupName": f"publicapi:hapikey-api-calls-ten-secondly:{account_id}"}


def daily() -> dict:
    """Fixture ``errors.429.daily.json`` (HubSpot usage-guidelines example)."""
    return {"status": "error", "message": "You have reached your daily limit.", "errorType": "RATE_LIMIT",
            "correlationId": correlation_id(), "policyName": "DAILY", "requestId": str(uuid.uuid4())}


def search_secondly() -> dict:
    """Search limit 429. Only the message is known (Node SDK RetryDecorator, notes §4);
    the ``policyName`` here is the emulator's guess."""
    return {"status": "error", "message": "You have reached your secondly limit.", "errorType": "RATE_LIMIT",
            "correlationId": correlation_id(), "policyName": "SECONDLY"}
