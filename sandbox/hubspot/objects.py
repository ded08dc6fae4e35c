"""The CRM object store: contacts, deals and line items, with unique-property indexes.

Records are kept with every property value as a string (notes §2: "All property
values are strings on the wire"), ids are strings from one account-wide sequence.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from datetime import datetime, timezone

from .errors import (HubSpotError, conflict, non_unique_id_property, property_problem, property_values_invalid,
                     validation)
from .properties import DEFAULT_READ, MODIFIED_PROPERTY, READ_ONLY, TYPE_IDS, PropertyRegistry

LABELS = {"contacts": "Contact", "deals": "Deal", "line_items": "Line item"}


def now_iso() -> str:
    """HubSpot timestamps: ISO-8601, milliseconds, ``Z`` (fixtures' createdAt/updatedAt)."""
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def unique_key(prop: str, value: str) -> str:
    # HubSpot matches contact emails case-insensitively (notes §2.1: "Dedupe by lower-cased email").
    return value.strip().lower() if prop == "email" else value


@dataclass
class Record:
    id: str
    properties: dict[str, str | None]
    created_at: str
    updated_at: str
    archived: bool = False
    archived_at: str | None = None
    trace_id: str | None = field(default=None, compare=False)

    def to_json(self, names: list[str] | None = None, every: bool = False) -> dict:
        """``SimplePublicObject`` (notes §2.1): id, properties, createdAt, updatedAt, archived."""
        if every:
            props = dict(self.properties)
        else:
            props = {n: self.properties.get(n) for n in names or []}
        body = {"id": self.id, "properties": props, "createdAt": self.created_at,
                "updatedAt": self.updated_at, "archived": self.archived}
        if self.archived_at:
            body["archivedAt"] = self.archived_at
        return body


class ObjectStore:
    """All objects of one account, per object type."""

    def __init__(self, registry: PropertyRegistry, portal_id: str, first_id: int = 1001, pipelines=None):
        self.registry = registry
        self.portal_id = portal_id
        self.pipelines = pipelines  # pipelines.Pipelines: deal stage options (None = unchecked)
        self.ids = itertools.count(first_id)
        self.records: dict[str, dict[str, Record]] = {t: {} for t in LABELS}

    # --- validation -------------------------------------------------------
    def check_properties(self, object_type: str, props) -> dict[str, str | None]:
        """Reject non-string values and unknown names, as HubSpot's validation does.

        Notes §2: values are strings (the spec's ``additionalProperties: {type: string}``;
        Prism rejects numbers). A number is refused with 400 VALIDATION_ERROR here so a
        client that forgets to stringify fails in tests, not in production.
        """
        if props is None:
            return {}
        if not isinstance(props, dict):
            raise validation("Invalid input JSON: `properties` must be an object")
        wrong_type = [k for k, v in props.items() if v is not None and not isinstance(v, str)]
        if wrong_type:
            raise validation("Property values must be strings: " + ", ".join(sorted(wrong_type)),
                             {"properties": sorted(wrong_type)})
        missing = [k for k in props if not self.registry.known(object_type, k)]
        # Fixture errors.400.property_doesnt_exist.json: one embedded entry per unknown name;
        # invalid values of known properties join the same list (notes §5: INVALID_OPTION).
        problems = [property_problem(k, f'Property "{k}" does not exist', "PROPERTY_DOESNT_EXIST") for k in missing]
        problems += [property_problem(*p) for p in self.value_problems(object_type, props)]
        if problems:
            raise HubSpotError(400, property_values_invalid(problems))
        return {k: v for k, v in props.items() if k not in READ_ONLY}

    def value_problems(self, object_type: str, props: dict) -> list[tuple[str, str, str]]:
        """``(name, message, code)`` for values HubSpot refuses although the property exists.

        - deals: ``pipeline``/``dealstage`` must be options of the seeded pipeline (notes §2.2).
        - line items: "``price`` cannot be negative" (notes §2.3, HubSpot line items guide).
          HubSpot's wording and code for this one are not published; ``NEGATIVE_PRICE``
          is the emulator's, inside the documented envelope.
        """
        if object_type == "deals" and self.pipelines is not None:
            return self.pipelines.problems(props)
        if object_type == "line_items" and props.get("price"):
            try:
                negative = float(props["price"]) < 0
            except ValueError:
                negative = False
            if negative:
                return [("price", f"{props['price']} is not a valid price: price cannot be negative",
                         "NEGATIVE_PRICE")]
        return []

    # --- lookups ------------------------------------------------------------
    def live(self, object_type: str):
        return (r for r in self.records[object_type].values() if not r.archived)

    def get(self, object_type: str, record_id: str, archived: bool = False) -> Record | None:
        record = self.records[object_type].get(str(record_id))
        if record is None or record.archived != archived:
            return None
        return record

    def find_unique(self, object_type: str, prop: str, value) -> Record | None:
        if value is None:
            return None
        key = unique_key(prop, str(value))
        for record in self.live(object_type):
            stored = record.properties.get(prop)
            if stored is not None and unique_key(prop, stored) == key:
                return record
        return None

    def resolve(self, object_type: str, ident, id_property: str | None) -> Record | None:
        """Find by record id, or by a unique property when ``id_property`` names one."""
        if id_property and id_property != "hs_object_id":
            self.require_unique(object_type, id_property)
            return self.find_unique(object_type, id_property, ident)
        return self.get(object_type, str(ident))

    def require_unique(self, object_type: str, prop: str) -> None:
        """Notes §2.1 / fixture errors.400.non_unique_id_property.json."""
        if not self.registry.is_unique(object_type, prop):
            raise non_unique_id_property(TYPE_IDS[object_type], prop, self.portal_id)

    def conflicts(self, object_type: str, props: dict, exclude: str | None = None) -> Record | None:
        """The live record already holding one of ``props``' unique values, if any."""
        for prop in self.registry.unique_names(object_type):
            other = self.find_unique(object_type, prop, props.get(prop))
            if other is not None and other.id != exclude:
                return other
        return None

    def conflict_error(self, object_type: str, existing: Record) -> HubSpotError:
        # Notes §2.1: "Contact already exists. Existing ID: N" (409 CONFLICT).
        return conflict(LABELS[object_type], existing.id)

    # --- writes (callers validate first; these never fail) -------------------
    def insert(self, object_type: str, props: dict, trace_id: str | None = None) -> Record:
        stamp = now_iso()
        record_id = str(next(self.ids))
        values = {k: v for k, v in props.items()}
        if object_type == "contacts" and values.get("email"):
            # HubSpot stores contact emails lower-cased.
            values["email"] = values["email"].strip().lower()
        values.update({"hs_object_id": record_id, "createdate": stamp, MODIFIED_PROPERTY[object_type]: stamp})
        record = Record(record_id, values, stamp, stamp, trace_id=trace_id)
        self.records[object_type][record_id] = record
        return record

    def patch(self, object_type: str, record: Record, props: dict, trace_id: str | None = None) -> Record:
        stamp = now_iso()
        for key, value in props.items():
            if object_type == "contacts" and key == "email" and value:
                value = value.strip().lower()
            record.properties[key] = value
        record.properties[MODIFIED_PROPERTY[object_type]] = stamp
        record.updated_at = stamp
        record.trace_id = trace_id
        return record

    def archive(self, object_type: str, record: Record) -> None:
        record.archived = True
        record.archived_at = now_iso()

    # --- single-record operations used by the basic API -----------------------
    def create(self, object_type: str, props) -> Record:
        props = self.check_properties(object_type, props)
        existing = self.conflicts(object_type, props)
        if existing is not None:
            raise self.conflict_error(object_type, existing)
        return self.insert(object_type, props)

    def update(self, object_type: str, record: Record, props) -> Record:
        props = self.check_properties(object_type, props)
        existing = self.conflicts(object_type, props, exclude=record.id)
        if existing is not None:
            raise self.conflict_error(object_type, existing)
        return self.patch(object_type, record, props)

    def read_names(self, object_type: str, requested) -> list[str]:
        """Requested property names (query string or body list), else the defaults."""
        if isinstance(requested, str):
            requested = [p for p in requested.split(",") if p]
        if not requested:
            return DEFAULT_READ[object_type]
        # Notes §2.1: unset requested properties come back as null; unknown names are ignored.
        # The system ones always come along: fixtures contacts.batch_read_by_email.response.207.json
        # and contacts.search.response.200.json ask for email/firstname/lastname and show
        # createdate, hs_object_id and lastmodifieddate too.
        always = ["createdate", "hs_object_id", MODIFIED_PROPERTY[object_type]]
        return list(dict.fromkeys([*requested, *always]))

    def dump(self) -> dict[str, list[dict]]:
        return {t: [r.to_json(every=True) for r in recs.values()] for t, recs in self.records.items()}
