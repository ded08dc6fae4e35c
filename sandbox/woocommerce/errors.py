"""WP_Error bodies and the JSON encoding WordPress uses for REST responses.

Every error is ``{"code", "message", "data": {"status", ...}}`` with the HTTP
status equal to ``data.status`` (notes §2 "Error envelope"). Messages are the
exact strings WooCommerce / WordPress core emit (notes §2 table and
WC ``includes/class-wc-rest-authentication.php``).
"""

from __future__ import annotations

import json

from starlette.responses import Response

# WC_REST_Authentication messages (notes §2 table).
BAD_SIGNATURE = "Invalid signature - provided signature does not match."
BAD_SIGNATURE_METHOD = "Invalid signature - signature method is invalid."
BAD_TIMESTAMP = "Invalid timestamp."
NONCE_USED = "Invalid nonce - nonce has already been used."
BAD_CONSUMER_KEY = "Consumer key is invalid."
BAD_CONSUMER_SECRET = "Consumer secret is invalid."
NO_READ = "The API key provided does not have read permissions."
NO_WRITE = "The API key provided does not have write permissions."
AUTH_ERROR = "woocommerce_rest_authentication_error"

CANNOT_LIST = "Sorry, you cannot list resources."
CANNOT_VIEW = "Sorry, you cannot view this resource."
NO_ROUTE = "No route was found matching the URL and request method"


class WPError(Exception):
    """A WP_Error on its way to becoming a response."""

    def __init__(self, code: str, message: str, status: int, headers: dict | None = None, **data):
        super().__init__(message)
        self.code, self.message, self.status = code, message, status
        self.headers = headers or {}
        self.data = data

    def body(self) -> dict:
        return {"code": self.code, "message": self.message, "data": {"status": self.status, **self.data}}


def wp_json(value) -> bytes:
    """Encode like ``wp_json_encode`` without flags: compact, ``\\uXXXX`` for
    non-ASCII and ``\\/`` for slashes (WP_REST_Server::serve_request passes no
    JSON_UNESCAPED_* options; notes §3 says the same for webhook bodies)."""
    text = json.dumps(value, ensure_ascii=True, separators=(",", ":"))
    return text.replace("/", "\\/").encode("ascii")


def wp_response(value, status: int = 200, headers: dict | None = None) -> Response:
    base = {
        "X-Content-Type-Options": "nosniff",
        "Access-Control-Expose-Headers": "X-WP-Total, X-WP-TotalPages, Link",
    }
    base.update(headers or {})
    return Response(wp_json(value), status_code=status, headers=base,
                    media_type="application/json; charset=UTF-8")


def error_response(err: WPError) -> Response:
    return wp_response(err.body(), err.status, err.headers)


def no_route() -> WPError:
    return WPError("rest_no_route", NO_ROUTE, 404)


def invalid_params(params: dict[str, str]) -> WPError:
    """WP_REST_Request::has_valid_params: one error naming every bad param
    (fixture wc-issue-21052_error_rest_invalid_param_per_page.json)."""
    return WPError("rest_invalid_param", "Invalid parameter(s): " + ", ".join(params), 400, params=params)
