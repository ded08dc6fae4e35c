"""The CRM object store: contacts, deals and line items, with property-value indexes.

Records are kept with every property value as a string (notes §2: "All property
values are strings on the wire"), ids are strings from one account-wide sequence.

Lookups by property value (upsert/read/update by a unique ``idProperty``, the 409
conflict check, search ``EQ``/``IN`` filters) go through per-property indexes so
that each costs O(1) in the number of records, not a scan. An index is built on the
first lookup of its property and kept current by every write below (insert, patch,
archive); it holds live records only, keyed by the folded value (stripped,
lower-cased). Lookups narrow to that bucket and then apply the exact comparison, so
answers are the ones a scan in creation order would give.
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


def fold(value: str) -> str:
    """The index key of a value: search compares strings case-insensitively, and
    :func:`unique_key` never tells apart two values this folds together."""
    return value.strip().lower()


def creation_order(record: "Record") -> int:
    # Ids come from one increasing account-wide counter and are only assigned by insert(),
    # so id order is the order of ObjectStore.records (what a scan would follow).
    return int(record.id)


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
        # (object type, property) -> folded value -> {record id: live record}; built on first use.
        self.indexes: dict[tuple[str, str], dict[str, dict[str, Record]]] = {}
        self.indexed: dict[str, list[str]] = {t: [] for t in LABELS}  # properties indexed per type
        # Per type: every record in creation order (for listing pages) and how many are archived.
        self.ordered: dict[str, list[Record]] = {t: [] for t in LABELS}
        self.archived_count: dict[str, int] = {t: 0 for t in LABELS}

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

    # --- property-value indexes -----------------------------------------------
    def index(self, object_type: str, prop: str) -> dict[str, dict[str, Record]]:
        """``{folded value: {record id: record}}`` of the live records holding ``prop``."""
        index = self.indexes.get((object_type, prop))
        if index is None:
            index = {}
            for record in self.live(object_type):
                value = record.properties.get(prop)
                if value is not None:
                    index.setdefault(fold(value), {})[record.id] = record
            self.indexes[(object_type, prop)] = index
            self.indexed[object_type].append(prop)
        return index

    def candidates(self, object_type: str, prop: str, value) -> list[Record]:
        """Live records whose ``prop`` folds like ``value``, in creation order (a superset of
        the exact matches; callers compare exactly)."""
        if value is None:
            return []
        bucket = self.index(object_type, prop).get(fold(str(value)))
        if not bucket:
            return []
        found = list(bucket.values())
        if len(found) > 1:
            found.sort(key=creation_order)
        return found

    def _unindex(self, object_type: str, record: Record, prop: str, value) -> None:
        if value is None:
            return
        index = self.indexes[(object_type, prop)]
        key = fold(value)
        bucket = index.get(key)
        if bucket is not None:
            bucket.pop(record.id, None)
            if not bucket:
                del index[key]

    def _reindex(self, object_type: str, record: Record, prop: str, value) -> None:
        if value is not None:
            self.indexes[(object_type, prop)].setdefault(fold(value), {})[record.id] = record

    def find_unique(self, object_type: str, prop: str, value) -> Record | None:
        """The first live record (creation order) whose ``prop`` equals ``value`` as
        :func:`unique_key` compares them."""
        if value is None:
            return None
        key = unique_key(prop, str(value))
        for record in self.candidates(object_type, prop, value):
            stored = record.properties.get(prop)
            if stored is not None and unique_key(prop, stored) == key:
                return record
        return None

    def page(self, object_type: str, archived: bool, after: int, limit: int) -> tuple[list[Record], bool]:
        """Records ``[after, after+limit)`` of the archived or live ones in creation order,
        and whether more follow (``GET /crm/v3/objects/{type}`` paging)."""
        ordered = self.ordered[object_type]
        if not archived and not self.archived_count[object_type]:
            return ordered[after:after + limit], after + limit < len(ordered)
        chosen = [r for r in ordered if r.archived == archived]
        return chosen[after:after + limit], after + limit < len(chosen)

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
        self.ordered[object_type].append(record)
        for prop in self.indexed[object_type]:
            self._reindex(object_type, record, prop, values.get(prop))
        return record

    def patch(self, object_type: str, record: Record, props: dict, trace_id: str | None = None) -> Record:
        stamp = now_iso()
        for key, value in props.items():
            if object_type == "contacts" and key == "email" and value:
                value = value.strip().lower()
            self._set(object_type, record, key, value)
        self._set(object_type, record, MODIFIED_PROPERTY[object_type], stamp)
        record.updated_at = stamp
        record.trace_id = trace_id
        return record

    def _set(self, object_type: str, record: Record, key: str, value) -> None:
        """Write one property of a record, keeping its index (if any) current."""
        old = record.properties.get(key)
        record.properties[key] = value
        if (object_type, key) in self.indexes and not record.archived and old != value:
            self._unindex(object_type, record, key, old)
            self._reindex(object_type, record, key, value)

    def archive(self, object_type: str, record: Record) -> None:
        if not record.archived:
            self.archived_count[object_type] += 1
            for prop in self.indexed[object_type]:
                self._unindex(object_type, record, prop, record.properties.get(prop))
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
