"""Calculated query cost and the per-shop leaky bucket (notes §1 "Cost", §2).

Shopify charges GraphQL by computed cost, not by request: scalars and enums
cost 0, each object 1, a connection 2 plus ``first``/``last`` times the cost of
one node, a mutation 10 (https://shopify.dev/docs/api/usage/limits; Shopify's
"Rate limiting GraphQL APIs by calculating query complexity"). The requested
cost is the worst case from the query text and is checked *before* execution;
the actual cost walks the answer and the difference is refunded afterwards.
With header ``Shopify-GraphQL-Cost-Debug: 1`` the answer also lists the
requested cost per field (``extensions.cost.fields``), as Shopify does.
"""

from __future__ import annotations

import threading
import time

from graphql import (
    FieldNode,
    FragmentSpreadNode,
    GraphQLSchema,
    InlineFragmentNode,
    OperationDefinitionNode,
    OperationType,
    get_named_type,
    is_leaf_type,
    is_list_type,
    value_from_ast_untyped,
)
from graphql.type import GraphQLNonNull

MUTATION_COST = 10
CONNECTION_COST = 2


class LeakyBucket:
    """Points available to one shop; refills continuously at ``restore_rate`` per second."""

    def __init__(self, size: float, restore_rate: float):
        self.size = float(size)
        self.restore_rate = float(restore_rate)
        self.available = float(size)
        self.updated = time.monotonic()
        self.lock = threading.Lock()
        # For GET /_sandbox/traffic: how close to empty the clients ran it, and how often it was empty.
        self.lowest = float(size)
        self.refused = 0

    def _refill(self) -> None:
        now = time.monotonic()
        self.available = min(self.size, self.available + (now - self.updated) * self.restore_rate)
        self.updated = now

    def configure(self, size: float | None = None, restore_rate: float | None = None) -> None:
        with self.lock:
            self._refill()
            if size is not None:
                self.size = float(size)
                self.available = min(self.available, self.size)
            if restore_rate is not None:
                self.restore_rate = float(restore_rate)

    def fill(self) -> None:
        with self.lock:
            self.available = self.size
            self.updated = time.monotonic()

    def take(self, cost: float) -> bool:
        """Take ``cost`` points if the bucket holds them now (no partial take)."""
        with self.lock:
            self._refill()
            if cost > self.available:
                self.refused += 1
                return False
            self.available -= cost
            self.lowest = min(self.lowest, self.available)
            return True

    def refund(self, points: float) -> None:
        with self.lock:
            self._refill()
            self.available = min(self.size, self.available + max(0.0, points))

    def status(self) -> dict:
        with self.lock:
            self._refill()
            # Shapes as observed: {"maximumAvailable":2000.0,"currentlyAvailable":1999,"restoreRate":100.0}
            return {
                "maximumAvailable": self.size,
                "currentlyAvailable": int(self.available),
                "restoreRate": self.restore_rate,
            }


class _Walker:
    """Walks one operation's selection set against the schema (and optionally the data)."""

    def __init__(self, schema: GraphQLSchema, fragments: dict, variables: dict, defaults: dict):
        self.schema = schema
        self.fragments = fragments
        self.variables = {**defaults, **(variables or {})}

    def _arg(self, node: FieldNode, name: str):
        for arg in node.arguments or ():
            if arg.name.value == name:
                return value_from_ast_untyped(arg.value, self.variables)
        return None

    def _fields(self, selection_set, parent_type):
        """Yield (field node, field definition) through fragments, once per response key."""
        for sel in selection_set.selections if selection_set else ():
            if isinstance(sel, FieldNode):
                if sel.name.value.startswith("__"):
                    continue
                fields = getattr(parent_type, "fields", {})
                if sel.name.value in fields:
                    yield sel, fields[sel.name.value]
            elif isinstance(sel, InlineFragmentNode):
                cond = self.schema.get_type(sel.type_condition.name.value) if sel.type_condition else parent_type
                yield from self._fields(sel.selection_set, cond or parent_type)
            elif isinstance(sel, FragmentSpreadNode):
                frag = self.fragments.get(sel.name.value)
                if frag:
                    yield from self._fields(frag.selection_set, self.schema.get_type(frag.type_condition.name.value))

    @staticmethod
    def _is_connection(named) -> bool:
        return named.name.endswith("Connection") and "edges" in getattr(named, "fields", {})

    def _node_selections(self, conn_node: FieldNode, conn_type):
        """The selections that describe one node of a connection (edges.node and nodes)."""
        out = []
        for sel, _ in self._fields(conn_node.selection_set, conn_type):
            if sel.name.value == "nodes":
                out.append((sel, "nodes", None))
            elif sel.name.value == "edges":
                edge_type = get_named_type(conn_type.fields["edges"].type)
                for sub, _ in self._fields(sel.selection_set, edge_type):
                    if sub.name.value == "node":
                        out.append((sub, "edges", sub))
        return out

    def requested(self, selection_set, parent_type, path: tuple = (), report: list | None = None) -> int:
        """Worst-case cost; with ``report``, also one breakdown entry per field (cost debug)."""
        total = 0
        for node, definition in self._fields(selection_set, parent_type):
            named = get_named_type(definition.type)
            key = node.alias.value if node.alias else node.name.value
            here = path + (key,)
            if is_leaf_type(named):
                if report is not None:
                    report.append(_entry(here, 0, 0, None))
                continue
            if self._is_connection(named):
                size = self._arg(node, "first") or self._arg(node, "last") or 1
                node_type = get_named_type(named.fields["nodes"].type)
                children = 0
                for sel, where, _ in self._node_selections(node, named):
                    inner = here + (("nodes",) if where == "nodes" else ("edges", "node"))
                    children += 1 + self.requested(sel.selection_set, node_type, inner, report)
                cost, children = CONNECTION_COST + int(size) * children, int(size) * children
                defined = CONNECTION_COST
            else:
                field_type = definition.type.of_type if isinstance(definition.type, GraphQLNonNull) else definition.type
                size = None
                if is_list_type(field_type):
                    # Plain lists are sized by ``first`` like connections; ``nodes(ids:)`` by the ids.
                    ids = self._arg(node, "ids")
                    size = len(ids) if isinstance(ids, list) else self._arg(node, "first")
                size = int(size) if size else 1
                children = size * self.requested(node.selection_set, named, here, report)
                cost, defined = size + children, 1
            if report is not None:
                report.append(_entry(here, defined, cost, children))
            total += cost
        return total

    def actual(self, selection_set, parent_type, data) -> int:
        if not isinstance(data, dict):
            return 0
        total = 0
        for node, definition in self._fields(selection_set, parent_type):
            key = node.alias.value if node.alias else node.name.value
            value = data.get(key)
            named = get_named_type(definition.type)
            if value is None or is_leaf_type(named):
                continue
            if self._is_connection(named):
                node_type = get_named_type(named.fields["nodes"].type)
                total += CONNECTION_COST
                for sel, where, _ in self._node_selections(node, named):
                    items = value.get("nodes") if where == "nodes" else [
                        e.get(sel.alias.value if sel.alias else "node") for e in value.get("edges") or ()
                    ]
                    for item in items or ():
                        total += 1 + self.actual(sel.selection_set, node_type, item)
            elif isinstance(value, list):
                total += sum(1 + self.actual(node.selection_set, named, v) for v in value)
            else:
                total += 1 + self.actual(node.selection_set, named, value)
        return total


def _entry(path: tuple, defined: int, total: int, children) -> dict:
    # Shape of Shopify's ``extensions.cost.fields`` entries (Shopify-GraphQL-Cost-Debug: 1, notes §1 Cost).
    return {"path": list(path), "definedCost": defined, "requestedTotalCost": total, "requestedChildrenCost": children}


def _operation(document, operation_name):
    ops = [d for d in document.definitions if isinstance(d, OperationDefinitionNode)]
    if operation_name:
        ops = [o for o in ops if o.name and o.name.value == operation_name]
    return ops[0] if ops else None


def _walker(schema, document, operation_name, variables):
    op = _operation(document, operation_name)
    fragments = {d.name.value: d for d in document.definitions if d.__class__.__name__ == "FragmentDefinitionNode"}
    defaults = {}
    for var in (op.variable_definitions if op else None) or ():
        if var.default_value is not None:
            defaults[var.variable.name.value] = value_from_ast_untyped(var.default_value)
    return op, _Walker(schema, fragments, variables, defaults)


def requested_cost(schema: GraphQLSchema, document, operation_name=None, variables=None,
                   report: list | None = None) -> int:
    """Worst-case cost of an already validated document; ``report`` collects a per-field breakdown."""
    op, walker = _walker(schema, document, operation_name, variables)
    if op is None:
        return 0
    if op.operation == OperationType.MUTATION:
        return MUTATION_COST * sum(1 for _ in walker._fields(op.selection_set, schema.mutation_type))
    return walker.requested(op.selection_set, schema.query_type, (), report)


def actual_cost(schema: GraphQLSchema, document, data, operation_name=None, variables=None) -> int:
    """Cost of what was actually returned (objects present in ``data``)."""
    op, walker = _walker(schema, document, operation_name, variables)
    if op is None or data is None:
        return 0
    if op.operation == OperationType.MUTATION:
        return MUTATION_COST * sum(1 for _ in walker._fields(op.selection_set, schema.mutation_type))
    return walker.actual(op.selection_set, schema.query_type, data)
