"""Property definitions per object type: the built-in ones and those created through
``POST /crm/v3/properties/{objectType}`` (with ``hasUniqueValue`` for upsert keys).
"""

from __future__ import annotations

from .errors import HubSpotError, error_body, not_found, validation

# Notes §2.4: object type ids; line items' 0-8 is unverified there.
TYPE_IDS = {"contacts": "0-1", "companies": "0-2", "deals": "0-3", "line_items": "0-8"}
OBJECT_TYPES = ("contacts", "deals", "line_items")
# Paths accept the plural name, the type id (notes §2.2: ``/crm/v3/objects/0-3``) or the singular.
ALIASES = {"contact": "contacts", "deal": "deals", "line_item": "line_items", "lineitem": "line_items",
           **{v: k for k, v in TYPE_IDS.items()}}

BUILTIN = {
    # The brief's list for contacts; notes §2.1 default read set is a subset.
    "contacts": ["email", "firstname", "lastname", "phone", "address", "city", "state", "zip", "country",
                 "company", "lifecyclestage", "hs_object_id", "createdate", "lastmodifieddate"],
    # Notes §2.2 typical deal properties plus the system ones of fixture deals.create.response.201.json.
    "deals": ["dealname", "amount", "pipeline", "dealstage", "closedate", "deal_currency_code", "description",
              "dealtype", "hubspot_owner_id", "hs_object_id", "createdate", "hs_lastmodifieddate"],
    # Notes §2.3: name, quantity, price, hs_product_id, hs_sku.
    "line_items": ["name", "quantity", "price", "hs_product_id", "hs_sku", "description", "amount", "discount",
                   "hs_discount_percentage", "tax", "hs_line_item_currency_code", "hs_object_id", "createdate",
                   "hs_lastmodifieddate"],
}
# Properties returned when a read names none (notes §2.1 for contacts; deals from fixture
# deals.create.response.201.json; line items from notes §2.3).
DEFAULT_READ = {
    "contacts": ["createdate", "email", "firstname", "hs_object_id", "lastmodifieddate", "lastname"],
    "deals": ["amount", "closedate", "createdate", "dealname", "dealstage", "hs_lastmodifieddate",
              "hs_object_id", "pipeline"],
    "line_items": ["createdate", "hs_lastmodifieddate", "hs_object_id", "name", "price", "quantity"],
}
MODIFIED_PROPERTY = {"contacts": "lastmodifieddate", "deals": "hs_lastmodifieddate",
                     "line_items": "hs_lastmodifieddate"}
# Set by the server, never by a client write.
READ_ONLY = {"hs_object_id", "createdate", "lastmodifieddate", "hs_lastmodifieddate"}
NUMBER_PROPERTIES = {"amount", "price", "quantity", "discount", "hs_discount_percentage", "tax"}


def canonical_type(name: str) -> str:
    """Map a path segment to ``contacts``/``deals``/``line_items``; 400 otherwise."""
    name = ALIASES.get(name, name)
    if name not in OBJECT_TYPES:
        raise validation(f"Unable to infer object type from: {name}")
    return name


def _definition(name: str, unique: bool = False, **given) -> dict:
    """A ``Property`` body; the SDK model requires name, label, type, fieldType,
    groupName, description and options."""
    number = name in NUMBER_PROPERTIES
    return {
        "name": name,
        "label": given.get("label") or name,
        "type": given.get("type") or ("number" if number else "string"),
        "fieldType": given.get("fieldType") or ("number" if number else "text"),
        "groupName": given.get("groupName") or "sandbox",
        "description": given.get("description") or "",
        "options": given.get("options") or [],
        "displayOrder": given.get("displayOrder", -1),
        "hasUniqueValue": unique,
        "hidden": bool(given.get("hidden", False)),
        "formField": bool(given.get("formField", False)),
        "calculated": False,
        "externalOptions": False,
        "archived": False,
        "createdAt": given.get("createdAt"),
        "updatedAt": given.get("updatedAt"),
    }


class PropertyRegistry:
    """The property definitions of one account, per object type."""

    def __init__(self):
        self.defs: dict[str, dict[str, dict]] = {
            t: {name: _definition(name) for name in names} for t, names in BUILTIN.items()}

    def known(self, object_type: str, name: str) -> bool:
        return name in self.defs[object_type]

    def is_unique(self, object_type: str, name: str) -> bool:
        """Upsert keys: contacts' email (notes §2.1) or any ``hasUniqueValue`` property."""
        if object_type == "contacts" and name == "email":
            return True
        definition = self.defs[object_type].get(name)
        return bool(definition and definition["hasUniqueValue"])

    def unique_names(self, object_type: str) -> list[str]:
        return [n for n in self.defs[object_type] if self.is_unique(object_type, n)]

    def create(self, object_type: str, body: dict, now: str) -> dict:
        """``POST /crm/v3/properties/{objectType}``; 409 when the name is taken."""
        name = body.get("name")
        for field in ("name", "label", "type", "fieldType", "groupName"):
            if not isinstance(body.get(field), str) or not body.get(field):
                raise validation(f"Invalid input JSON: missing required field `{field}`")
        if name in self.defs[object_type]:
            # Category as HubSpot names it for an existing property name; wording unverified.
            raise HubSpotError(409, error_body(f"Property named '{name}' already exists.",
                                               "OBJECT_ALREADY_EXISTS"))
        definition = _definition(name, bool(body.get("hasUniqueValue")),
                                 **{k: v for k, v in body.items() if k not in ("name", "hasUniqueValue")},
                                 createdAt=now, updatedAt=now)
        self.defs[object_type][name] = definition
        return definition

    def get(self, object_type: str, name: str) -> dict:
        definition = self.defs[object_type].get(name)
        if definition is None:
            raise not_found(f"Unable to find property {name} for object type {TYPE_IDS[object_type]}")
        return definition

    def listing(self, object_type: str) -> list[dict]:
        return list(self.defs[object_type].values())

    def custom(self) -> dict[str, list[dict]]:
        """Definitions that are not built in, per object type (for ``/_sandbox/state``)."""
        return {t: [d for n, d in defs.items() if n not in BUILTIN[t]] for t, defs in self.defs.items()}
