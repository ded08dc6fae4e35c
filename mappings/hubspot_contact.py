"""Canonical customer -> HubSpot contact properties (for batch upsert by email).

HubSpot wants every property value as a string (../shared/notes/hubspot.md §2);
empty values are left out so an upsert never blanks what a salesperson typed.
"""

from __future__ import annotations

from connector.model import Order


def contact_key(order: Order) -> str | None:
    """The idempotency key of a contact: its lower-cased email (None for no email)."""
    return order.customer.email.strip().lower() if order.customer.email else None


def contact_properties(order: Order, lifecycle_stage: str = "customer") -> dict[str, str]:
    """Properties for ``batch/upsert`` with ``idProperty: email``."""
    customer = order.customer
    address = order.billing_address or order.shipping_address
    props = {
        "email": contact_key(order),
        "firstname": customer.first_name,
        "lastname": customer.last_name,
        "phone": customer.phone,
        "company": customer.company,
        "lifecyclestage": lifecycle_stage,
    }
    if address:
        props.update({
            "address": ", ".join(p for p in (address.address1, address.address2) if p) or None,
            "city": address.city,
            "state": address.province_code or address.province,
            "zip": address.zip,
            "country": address.country_code or address.country,
        })
    return {k: str(v) for k, v in props.items() if v not in (None, "")}
