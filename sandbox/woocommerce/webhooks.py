"""The ``/wc/v3/webhooks`` REST resource: the webhook record and its controller.

Ported from WC ``WC_REST_Webhooks_V1_Controller`` / ``_V2_Controller`` (v3
inherits both), ``WC_Webhook`` and ``WC_Webhook_Data_Store`` (notes §3). Facts
this module keeps from the code, where the docs say otherwise:

- Creation always makes an ``active`` webhook (``prepare_item_for_database``
  sets ``post_status = publish``); a ``status`` in the body is only validated.
- ``secret`` is write-only: never rendered. Missing -> ``wp_generate_password(50, true, true)``.
- A new webhook has ``date_modified: null`` (the insert leaves the column at
  ``0000-00-00``); every later save (a ping, a delivery result, a PUT) sets it.
- ``api_version`` is 3 for ``/wc/v3`` (``wp_api_v3``), so payloads are v3 objects.
- GET of an unknown id is 400 "ID is invalid." (``prepare_item_for_response``);
  DELETE of an unknown id is 404 "Invalid ID."; DELETE without ``force`` is 501.

Deliveries, pings and saves are done by ``delivery.Engine`` (passed in).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime

from sandbox.woocommerce import errors, listing, wp
from sandbox.woocommerce.errors import WPError, wp_response
from sandbox.woocommerce.render import wc_date

STATUSES = ["active", "paused", "disabled"]          # wc_get_webhook_statuses()
RESOURCES = ["coupon", "customer", "order", "product"]
EVENTS = ["created", "updated", "deleted", "restored"]
INVALID_ACTION_TOPICS = ("action.woocommerce_login_credentials",
                         "action.woocommerce_product_csv_importer_check_import_file_path",
                         "action.woocommerce_webhook_should_deliver")
# WC_Webhook::get_topic_hooks(); order topics per notes §3 table (trunk column).
TOPIC_HOOKS = {
    "coupon.created": ["woocommerce_process_shop_coupon_meta", "woocommerce_new_coupon"],
    "coupon.updated": ["woocommerce_process_shop_coupon_meta", "woocommerce_update_coupon"],
    "coupon.deleted": ["wp_trash_post"],
    "coupon.restored": ["untrashed_post"],
    "customer.created": ["user_register", "woocommerce_created_customer", "woocommerce_new_customer"],
    "customer.updated": ["profile_update", "woocommerce_update_customer"],
    "customer.deleted": ["delete_user"],
    "order.created": ["woocommerce_new_order"],
    "order.updated": ["woocommerce_update_order", "woocommerce_order_refunded", "woocommerce_delete_order_refund"],
    "order.deleted": ["wp_trash_post", "woocommerce_trash_order"],
    "order.restored": ["untrashed_post", "woocommerce_untrash_order"],
    "product.created": ["woocommerce_process_product_meta", "woocommerce_new_product",
                        "woocommerce_new_product_variation"],
    "product.updated": ["woocommerce_process_product_meta", "woocommerce_update_product",
                        "woocommerce_update_product_variation"],
    "product.deleted": ["wp_trash_post"],
    "product.restored": ["untrashed_post"],
}
CANNOT_CREATE = "Sorry, you are not allowed to create resources."
CANNOT_EDIT = "Sorry, you are not allowed to edit this resource."
CANNOT_DELETE = "Sorry, you are not allowed to delete this resource."
BAD_URL = "Webhook delivery URL must be a valid URL starting with http:// or https://."
INVALID_ID = "woocommerce_rest_shop_webhook_invalid_id"


def is_valid_topic(topic) -> bool:
    """``wc_is_webhook_valid_topic``."""
    if not isinstance(topic, str) or any(topic.startswith(t) for t in INVALID_ACTION_TOPICS):
        return False
    if topic.startswith(("action.woocommerce_", "action.wc_")):
        return True
    parts = topic.split(".")
    return len(parts) >= 2 and parts[0] in RESOURCES and parts[1] in EVENTS


@dataclass
class Webhook:
    """One row of ``wc_webhooks`` (times are naive UTC)."""
    id: int
    name: str
    topic: str
    delivery_url: str
    secret: str
    user_id: int
    date_created_gmt: datetime
    status: str = "active"
    date_modified_gmt: datetime | None = None
    api_version: int = 3
    failure_count: int = 0
    pending_delivery: bool = True   # WC_Webhook_Data_Store::create: true until a ping answers 200

    @property
    def resource(self) -> str:
        return self.topic.split(".")[0]

    @property
    def event(self) -> str:
        parts = self.topic.split(".")
        return parts[1] if len(parts) > 1 else ""

    @property
    def hooks(self) -> list[str]:
        return [self.event] if self.resource == "action" else list(TOPIC_HOOKS.get(self.topic, []))

    def state(self) -> dict:
        """Everything, secret included, for ``GET /_sandbox/state``."""
        return {"id": self.id, "name": self.name, "status": self.status, "topic": self.topic,
                "delivery_url": self.delivery_url, "secret": self.secret, "user_id": self.user_id,
                "api_version": f"wp_api_v{self.api_version}", "failure_count": self.failure_count,
                "pending_delivery": self.pending_delivery, "date_created_gmt": wc_date(self.date_created_gmt),
                "date_modified_gmt": wc_date(self.date_modified_gmt)}


def render(hook: Webhook, site, home: str) -> dict:
    """WC_REST_Webhooks_V2_Controller::prepare_item_for_response (fixture
    wcdocs_v3_webhook_create_response.json has the same keys)."""
    api = f"{home}/wp-json/wc/v3/webhooks"

    def local(moment):
        return wc_date(moment + site.tz_offset) if moment else None
    return {
        "id": hook.id, "name": hook.name, "status": hook.status, "topic": hook.topic,
        "resource": hook.resource, "event": hook.event, "hooks": hook.hooks, "delivery_url": hook.delivery_url,
        "date_created": local(hook.date_created_gmt), "date_created_gmt": wc_date(hook.date_created_gmt),
        "date_modified": local(hook.date_modified_gmt), "date_modified_gmt": wc_date(hook.date_modified_gmt),
        "_links": {"self": [{"href": f"{api}/{hook.id}"}], "collection": [{"href": api}]},
    }


def _check_strings(params: dict, names: tuple, problems: dict) -> None:
    for name in names:
        if name in params and not isinstance(params[name], str):
            problems[name] = f"{name} is not of type string."


def _check_status(params: dict, problems: dict, enum: list[str]) -> None:
    if "status" in params and params["status"] not in enum:
        problems["status"] = f"status is not one of {listing.wp_list(enum)}."


def utcnow() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None, microsecond=0)


class WebhookAPI:
    """Handlers for the webhook routes; ``engine`` is the delivery.Engine."""

    def __init__(self, engine):
        self.engine = engine

    async def list(self, site, cred, params: dict, home: str):
        problems: dict[str, str] = {}
        page = listing._int(params, "page", problems, 1, minimum=1)
        per_page = listing._int(params, "per_page", problems, 10, 1, 100)
        # get_items only passes offset on when it is empty, so a given offset is ignored (WC bug kept).
        listing._int(params, "offset", problems)
        order, orderby = params.get("order", "desc"), params.get("orderby", "date")
        if order not in ("asc", "desc"):
            problems["order"] = f"order is not one of {listing.wp_list(['asc', 'desc'])}."
        if orderby not in ("date", "id", "title"):
            problems["orderby"] = f"orderby is not one of {listing.wp_list(['date', 'id', 'title'])}."
        _check_status(params, problems, ["all"] + STATUSES)
        ids = {}
        for name in ("include", "exclude"):
            parts = listing.parse_list(params.get(name))
            bad = [i for i, part in enumerate(parts) if not part.isdigit()]
            if bad:
                problems[name] = f"{name}[{bad[0]}] is not of type integer."
            ids[name] = {int(p) for p in parts if p.isdigit()}
        if problems:
            raise errors.invalid_params(problems)
        if cred is None:
            raise WPError("woocommerce_rest_cannot_view", errors.CANNOT_LIST, 401)
        status, search = params.get("status", "all"), str(params.get("search") or "").lower()
        hooks = [h for h in site.webhooks.values()
                 if (status == "all" or h.status == status) and (not ids["include"] or h.id in ids["include"])
                 and h.id not in ids["exclude"] and search in h.name.lower()]
        # search_webhooks: ORDER BY date_created_gmt | webhook_id | name (ties: by id here).
        key = {"date": lambda h: (h.date_created_gmt, h.id), "id": lambda h: h.id,
               "title": lambda h: (h.name, h.id)}[orderby]
        hooks.sort(key=key, reverse=order == "desc")
        total = len(hooks)
        pages = math.ceil(total / per_page) if per_page > 1 else 1   # max_num_pages as search_webhooks computes it
        chunk = hooks[(page - 1) * per_page:page * per_page]
        headers = listing.headers(f"{home}/wp-json/wc/v3/webhooks", params, {"page": page}, total, pages)
        return wp_response([render(h, site, home) for h in chunk], headers=headers)

    async def get(self, site, cred, params: dict, home: str, id: str):
        if cred is None:
            raise WPError("woocommerce_rest_cannot_view", errors.CANNOT_VIEW, 401)
        hook = site.webhooks.get(int(id))
        if hook is None:
            raise WPError(INVALID_ID, "ID is invalid.", 400)
        return wp_response(render(hook, site, home))

    async def create(self, site, cred, params: dict, home: str):
        missing = [name for name in ("topic", "delivery_url") if params.get(name) is None]
        if missing:
            raise WPError("rest_missing_callback_param", "Missing parameter(s): " + ", ".join(missing), 400,
                          params=missing)
        problems: dict[str, str] = {}
        _check_strings(params, ("name", "status", "topic", "delivery_url", "secret"), problems)
        _check_status(params, problems, STATUSES)
        if problems:
            raise errors.invalid_params(problems)
        if cred is None:
            raise WPError("woocommerce_rest_cannot_create", CANNOT_CREATE, 401)
        if params.get("id") not in (None, "", 0, "0"):
            raise WPError("woocommerce_rest_shop_webhook_exists", "Cannot create existing shop_webhook.", 400)
        topic = params["topic"]
        if not topic or not is_valid_topic(topic.lower()):
            raise WPError("woocommerce_rest_shop_webhook_invalid_topic",
                          "Webhook topic is required and must be valid.", 400)
        if not wp.wc_is_valid_url(params["delivery_url"]):
            raise WPError("woocommerce_rest_shop_webhook_invalid_delivery_url", BAD_URL, 400)
        now = utcnow()
        name = params.get("name") or "Webhook created on " + now.strftime("%b %d, %Y @ %I:%M %p")
        hook = Webhook(
            id=site.next_webhook_id, name=name, topic=topic if is_valid_topic(topic) else "",
            delivery_url=params["delivery_url"], user_id=cred.user_id, date_created_gmt=now,
            secret=params.get("secret") or wp.wp_generate_password(50, True, True),
        )
        site.next_webhook_id += 1
        site.webhooks[hook.id] = hook
        # The 201 body is prepared before the ping (whose result is ignored), notes §3 "Ping".
        body = render(hook, site, home)
        await self.engine.ping(site, hook, home)
        return wp_response(body, 201, headers={"Location": f"{home}/wp-json/wc/v3/webhooks/{hook.id}"})

    async def update(self, site, cred, params: dict, home: str, id: str):
        problems: dict[str, str] = {}
        _check_strings(params, ("name", "status", "topic", "secret"), problems)
        _check_status(params, problems, STATUSES)
        if problems:
            raise errors.invalid_params(problems)
        if cred is None:
            raise WPError("woocommerce_rest_cannot_edit", CANNOT_EDIT, 401)
        hook = site.webhooks.get(int(id))
        if hook is None:
            raise WPError(INVALID_ID, "ID is invalid.", 400)
        topic, url = params.get("topic"), params.get("delivery_url")
        if topic and not is_valid_topic(topic.lower()):
            raise WPError("woocommerce_rest_shop_webhook_invalid_topic", "Webhook topic must be valid.", 400)
        if url and not wp.wc_is_valid_url(url):
            raise WPError("woocommerce_rest_shop_webhook_invalid_delivery_url", BAD_URL, 400)
        status = params.get("status")
        if status and status.lower() not in STATUSES:
            raise WPError("woocommerce_rest_shop_webhook_invalid_status", "Webhook status must be valid.", 400)
        url_changed = bool(url) and url != hook.delivery_url
        if topic:
            hook.topic = topic if is_valid_topic(topic) else ""
        if url:
            hook.delivery_url = url
        if params.get("secret"):
            hook.secret = params["secret"]
        if status:
            hook.status = status if status in STATUSES else "disabled"   # WC_Webhook::set_status
        if params.get("name"):
            hook.name = params["name"]
        await self.engine.save(site, hook, home, url_changed=url_changed)
        return wp_response(render(hook, site, home))

    async def delete(self, site, cred, params: dict, home: str, id: str):
        force = params.get("force", False)
        if not wp.rest_is_boolean(force):
            raise errors.invalid_params({"force": "force is not of type boolean."})
        if cred is None:
            raise WPError("woocommerce_rest_cannot_delete", CANNOT_DELETE, 401)
        if not wp.rest_sanitize_boolean(force):
            raise WPError("woocommerce_rest_trash_not_supported", "Webhooks do not support trashing.", 501)
        hook = site.webhooks.get(int(id))
        if hook is None:
            raise WPError(INVALID_ID, "Invalid ID.", 404)
        body = render(hook, site, home)
        del site.webhooks[hook.id]
        return wp_response(body)
