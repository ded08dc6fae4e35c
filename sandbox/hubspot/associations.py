"""Associations between records: the store, v3 create-body associations, and the
v4 batch/basic operations (``shared/notes/hubspot.md`` §2.4).

Every association is kept in both directions, each with its own type id
(deal→contact 3 / contact→deal 4, deal→line_item 19 / line_item→deal 20).
A line item has at most one deal (notes §2.3: "Line items belong to one single
parent object"); linking it to a second deal is refused on every path.
"""

from __future__ import annotations

from .errors import check_batch_size, standard_error, validation
from .objects import ObjectStore
from .properties import TYPE_IDS

HUBSPOT_DEFINED = "HUBSPOT_DEFINED"
# Notes §2.4 table (SDK constants ``hubspot.crm.AssociationType``): type id -> (from, to, reverse id).
TYPES = {
    4: ("contacts", "deals", 3),
    3: ("deals", "contacts", 4),
    19: ("deals", "line_items", 20),
    20: ("line_items", "deals", 19),
}
DEFAULT_TYPE = {(f, t): type_id for type_id, (f, t, _) in TYPES.items()}
SINGULAR = {"contacts": "contact", "deals": "deal", "line_items": "line_item"}


class AssociationStore:
    """Directed edges ``(from_type, from_id, to_type, to_id) -> {type ids}``."""

    def __init__(self, objects: ObjectStore):
        self.objects = objects
        self.edges: dict[tuple[str, str, str, str], set[int]] = {}
        # (from_type, from_id, to_type) -> {to_id: the same type-id set as in ``edges``}, in the
        # order the edges were added, so :meth:`targets` answers without scanning every edge.
        self.by_source: dict[tuple[str, str, str], dict[str, set[int]]] = {}

    def default_type(self, from_type: str, to_type: str) -> int:
        type_id = DEFAULT_TYPE.get((from_type, to_type))
        if type_id is None:
            raise validation(f"No default association type between {from_type} and {to_type}")
        return type_id

    def add(self, from_type: str, from_id: str, to_type: str, to_id: str, type_id: int) -> None:
        """Store one association and its reverse (HubSpot shows both sides)."""
        self._edge(from_type, from_id, to_type, to_id).add(type_id)
        self._edge(to_type, to_id, from_type, from_id).add(TYPES[type_id][2])

    def _edge(self, from_type: str, from_id: str, to_type: str, to_id: str) -> set[int]:
        key = (from_type, from_id, to_type, to_id)
        types = self.edges.get(key)
        if types is None:
            types = self.edges[key] = set()
            self.by_source.setdefault((from_type, from_id, to_type), {})[to_id] = types
        return types

    def remove(self, from_type: str, from_id: str, to_type: str, to_id: str) -> None:
        self._drop(from_type, from_id, to_type, to_id)
        self._drop(to_type, to_id, from_type, from_id)

    def _drop(self, from_type: str, from_id: str, to_type: str, to_id: str) -> None:
        if self.edges.pop((from_type, from_id, to_type, to_id), None) is None:
            return
        source = (from_type, from_id, to_type)
        targets = self.by_source[source]
        del targets[to_id]
        if not targets:
            del self.by_source[source]

    def targets(self, from_type: str, from_id: str, to_type: str) -> list[tuple[str, set[int]]]:
        """``[(to_id, type ids)]`` of one record towards one type, oldest association first."""
        return list(self.by_source.get((from_type, from_id, to_type), {}).items())

    def other_parent(self, from_type: str, from_id: str | None, to_type: str, to_id: str) -> str | None:
        """The deal already holding this line item, when linking it to another deal.

        Notes §2.3 ([docs] line items guide): "Line items belong to one single parent
        object". ``from_id`` None stands for a record being created (no parent yet
        matches it). Re-linking the same pair is allowed.
        """
        if {from_type, to_type} != {"deals", "line_items"}:
            return None
        item, deal = (from_id, to_id) if from_type == "line_items" else (to_id, from_id)
        if item is None:
            return None
        for parent, _ in self.targets("line_items", item, "deals"):
            if parent != deal:
                return parent
        return None

    def check_type(self, from_type: str, to_type: str, spec: dict) -> int:
        """Validate one ``{associationCategory, associationTypeId}`` against the pair."""
        if not isinstance(spec, dict):
            raise validation("Invalid input JSON: association type must be an object")
        type_id = spec.get("associationTypeId")
        known = TYPES.get(type_id)
        if spec.get("associationCategory") != HUBSPOT_DEFINED or known is None or known[:2] != (from_type, to_type):
            # Labels (USER_DEFINED) are not emulated; a wrong HUBSPOT_DEFINED id is a real mistake.
            raise validation(f"{spec.get('associationCategory')} {type_id} is not a valid association type "
                             f"between {from_type} and {to_type}")
        return type_id

    def parse_create_body(self, from_type: str, associations) -> list[tuple[str, str, int]]:
        """v3 create-body ``associations: [{to:{id}, types:[...]}]`` -> ``[(to_type, to_id, type_id)]``.

        The target type follows from the type id (notes §2.2: deal→contact 3; §2.3:
        line_item→deal 20). Targets must exist, or the whole create fails.
        """
        if not associations:
            return []
        if not isinstance(associations, list):
            raise validation("Invalid input JSON: `associations` must be an array")
        parsed = []
        for assoc in associations:
            to_id = str(((assoc or {}).get("to") or {}).get("id", ""))
            for spec in assoc.get("types") or []:
                type_id = (spec or {}).get("associationTypeId")
                to_type = TYPES.get(type_id, (None, None))[1]
                if to_type is None:
                    raise validation(f"Unknown association type {type_id} for {from_type}")
                self.check_type(from_type, to_type, spec)
                if self.objects.get(to_type, to_id) is None:
                    raise validation(f"Could not create associations: {SINGULAR[to_type]} {to_id} does not exist",
                                     {"ids": [to_id]})
                parent = self.other_parent(from_type, None, to_type, to_id)
                if parent is not None:
                    raise single_parent(to_id, parent)
                parsed.append((to_type, to_id, type_id))
        deals = sorted({to_id for to_type, to_id, _ in parsed if to_type == "deals"})
        if from_type == "line_items" and len(deals) > 1:
            raise validation(f"Line items belong to one single parent object; got deals {', '.join(deals)}.",
                             {"dealId": deals})
        return parsed

    def apply_create_body(self, from_type: str, from_id: str, parsed) -> None:
        for to_type, to_id, type_id in parsed:
            self.add(from_type, from_id, to_type, to_id, type_id)

    # --- v4 batch operations: each returns (status, body-without-timestamps) ---------
    def _pair_error(self, from_type: str, from_id: str, to_type: str, to_id: str) -> dict | None:
        for object_type, object_id in ((from_type, from_id), (to_type, to_id)):
            if self.objects.get(object_type, object_id) is None:
                return standard_error("VALIDATION_ERROR", f"{SINGULAR[object_type]} {object_id} does not exist",
                                      {"ids": [object_id]})
        parent = self.other_parent(from_type, from_id, to_type, to_id)
        if parent is not None:
            body = single_parent(from_id if from_type == "line_items" else to_id, parent).body
            return standard_error(body["category"], body["message"], body["context"])
        return None

    def check_pair(self, from_type: str, from_id: str, to_type: str, to_id: str) -> None:
        """Raise the 400 of :meth:`_pair_error` (single-record PUT endpoints)."""
        error = self._pair_error(from_type, from_id, to_type, to_id)
        if error is not None:
            raise validation(error["message"], error["context"])

    def batch_create(self, from_type: str, to_type: str, body: dict) -> tuple[int, dict]:
        """``POST /crm/v4/associations/{from}/{to}/batch/create`` (201, or 207 with errors)."""
        inputs = (body or {}).get("inputs")
        check_batch_size(inputs)
        results, errors = [], []
        for item in inputs:
            from_id, to_id = _id(item.get("from")), _id(item.get("to"))
            type_ids = [self.check_type(from_type, to_type, s) for s in item.get("types") or []]
            if not type_ids:
                raise validation("Invalid input JSON: `types` must not be empty")
            error = self._pair_error(from_type, from_id, to_type, to_id)
            if error:
                errors.append(error)
                continue
            for type_id in type_ids:
                self.add(from_type, from_id, to_type, to_id, type_id)
            # Fixture associations_v4.batch_create.response.201.json.
            results.append({"fromObjectTypeId": TYPE_IDS[from_type], "fromObjectId": from_id,
                            "toObjectTypeId": TYPE_IDS[to_type], "toObjectId": to_id, "labels": []})
        return _batch(201, results, errors)

    def batch_default(self, from_type: str, to_type: str, body: dict) -> tuple[int, dict]:
        """``POST .../batch/associate/default``: both directions per pair, as fixture
        associations_v4.batch_associate_default.response.200.json assumes (notes §9: unverified)."""
        inputs = (body or {}).get("inputs")
        check_batch_size(inputs)
        type_id = self.default_type(from_type, to_type)
        results, errors = [], []
        for item in inputs:
            from_id, to_id = _id(item.get("from")), _id(item.get("to"))
            error = self._pair_error(from_type, from_id, to_type, to_id)
            if error:
                errors.append(error)
                continue
            self.add(from_type, from_id, to_type, to_id, type_id)
            results.append(_default_result(from_id, to_id, type_id))
            results.append(_default_result(to_id, from_id, TYPES[type_id][2]))
        # The SDK maps only 200 here, so errors ride in the 200 body (numErrors/errors, notes §2.4).
        status, payload = _batch(200, results, errors)
        return 200, payload

    def batch_read(self, from_type: str, to_type: str, body: dict) -> tuple[int, dict]:
        """``POST .../batch/read`` (at most 1000 inputs, notes §3)."""
        inputs = (body or {}).get("inputs")
        if not isinstance(inputs, list) or len(inputs) > 1000:
            raise validation("The maximum number of inputs supported in a batch is 1000. "
                             "Please reduce the number of items and try again")
        results, errors = [], []
        for item in inputs:
            from_id = str((item or {}).get("id", ""))
            targets = self.targets(from_type, from_id, to_type)
            if not targets:
                # Wording unverified; the 207 shape is the spec's.
                errors.append(standard_error("OBJECT_NOT_FOUND", f"No {to_type} is associated with "
                                             f"{SINGULAR[from_type]} {from_id}.", {"fromObjectId": [from_id]}))
                continue
            results.append({"from": {"id": from_id}, "to": [
                {"toObjectId": to_id, "associationTypes": [
                    {"category": HUBSPOT_DEFINED, "typeId": t, "label": None} for t in sorted(types)]}
                for to_id, types in targets]})
        return _batch(200, results, errors)

    def batch_archive(self, from_type: str, to_type: str, body: dict) -> None:
        """``POST .../batch/archive``: ``{inputs:[{from:{id}, to:[{id}]}]}`` -> 204."""
        inputs = (body or {}).get("inputs")
        check_batch_size(inputs)
        for item in inputs:
            for to in item.get("to") or []:
                self.remove(from_type, _id(item.get("from")), to_type, _id(to))

    def dump(self) -> list[dict]:
        return [{"fromObjectType": f, "fromObjectId": fi, "toObjectType": t, "toObjectId": ti,
                 "types": [{"associationCategory": HUBSPOT_DEFINED, "associationTypeId": x} for x in sorted(ids)]}
                for (f, fi, t, ti), ids in self.edges.items()]


def single_parent(item_id: str, parent_id: str):
    """400 for a line item already under another deal (notes §2.3). The rule is HubSpot's;
    this wording is the emulator's (HubSpot's answer is not published)."""
    return validation(f"Line item {item_id} already belongs to deal {parent_id}. "
                      "Line items belong to one single parent object.",
                      {"lineItemId": [item_id], "dealId": [parent_id]})


def _id(ref) -> str:
    return str((ref or {}).get("id", ""))


def _default_result(from_id: str, to_id: str, type_id: int) -> dict:
    return {"from": {"id": from_id}, "to": {"id": to_id},
            "associationSpec": {"associationCategory": HUBSPOT_DEFINED, "associationTypeId": type_id}}


def _batch(ok_status: int, results: list, errors: list) -> tuple[int, dict]:
    body = {"status": "COMPLETE", "results": results}
    if errors:
        body.update(numErrors=len(errors), errors=errors)
        return 207, body
    return ok_status, body
