"""A small executor for bulk operations' inner queries over the emulator's node dicts.

Why it exists: a bulk operation renders a whole shop in one go, and graphql-core's ``execute()``
builds a ``Path`` and a ``GraphQLResolveInfo``, runs ``get_argument_values`` and the
``complete_value`` dispatch for every field of every node, which costs about ten times the work
itself: the connector's bulk query over 10,000 orders took about 32 s to execute (100,000 about
six minutes), and takes about 4 s here, a third of it in the wired resolvers' pagination.
:func:`project` does what graphql-core 3.2's ``execute(...).data`` does for such a query, with
everything that depends only on the query worked out once per *plan* (one per object type and
merged selection) and reused for every node: the collected fields (graphql-core's own
``collect_fields`` / ``collect_sub_fields``, so aliases, merged selections, fragments with type
conditions and ``@skip`` / ``@include`` behave exactly as there), the coerced arguments
(``get_argument_values``), the resolve info, the leaf serializers. Per node it is dict reads, the
wired resolvers (called as ``resolve(source, info, **args)`` with an info whose ``path`` is None;
the emulator's resolvers read only ``info.context``) and recursion. Abstract types resolve
through the dict's ``"__typename"``, as graphql-core's default type resolver does.

Fallback: :func:`project` answers None, and the caller runs graphql-core's ``execute()`` (which then
gives the answer or the errors it always gave), whenever the document or the data is not of the
plain shape handled here: not exactly one operation, not a query, variable definitions,
``__schema`` / ``__type``, a type with ``is_type_of`` or ``resolve_type``; or, while projecting, any
exception (a resolver raising, a null in a non-null field, an abstract value without a usable
``__typename``, an object that is not a dict, a list that is not a list, a leaf that does not
serialize, a callable or exception value) and an empty answer.
"""

from __future__ import annotations

import logging
from typing import Any, Callable

from graphql import (
    FragmentDefinitionNode,
    GraphQLEnumType,
    GraphQLResolveInfo,
    GraphQLScalarType,
    OperationDefinitionNode,
    OperationType,
    TypeNameMetaFieldDef,
    Undefined,
    is_abstract_type,
    is_leaf_type,
    is_list_type,
    is_non_null_type,
    is_object_type,
)
from graphql.execution.collect_fields import collect_fields, collect_sub_fields
from graphql.execution.values import get_argument_values
from graphql.pyutils import is_awaitable
from graphql.type.scalars import serialize_boolean, serialize_float, serialize_id, serialize_string

log = logging.getLogger(__name__)

_NONE = type(None)
_NOTHING: frozenset = frozenset()
# Value classes a leaf type's serialize() returns unchanged (an equal value), so they are kept as read.
_IDENTITY = {serialize_string: frozenset({str}), serialize_id: frozenset({str}),
             serialize_boolean: frozenset({bool}), serialize_float: frozenset({float})}
# For scalars with graphql-core's default (identity) serialize, e.g. Shopify's DateTime, Decimal, URL.
_PLAIN = frozenset({str, int, float, bool, dict, list})

Complete = Callable[[Any], Any]
Run = Callable[[Any, Callable[[str], Any]], dict]


class Unsupported(Exception):
    """A shape or value that graphql-core's ``execute()`` must answer itself."""


def project(schema, document, context: Any) -> dict | None:
    """``execute(schema, document, context_value=context).data``, or None when the caller must run that."""
    try:
        data = _Projector(schema, document, context).run()
    except Exception as exc:  # noqa: BLE001 - any doubt: graphql-core answers, with its own errors
        log.debug("bulk query falls back to graphql-core execute: %r", exc)
        return None
    return data or None


def _root_get(name: str) -> Any:
    # graphql-core's default resolver on the root value (None) reads an attribute.
    return getattr(None, name, None)


class _Projector:
    def __init__(self, schema, document, context: Any) -> None:
        operation, fragments = None, {}
        for definition in document.definitions:  # as graphql-core's ExecutionContext.build
            if isinstance(definition, OperationDefinitionNode):
                if operation is not None:
                    raise Unsupported("several operations")
                operation = definition
            elif isinstance(definition, FragmentDefinitionNode):
                fragments[definition.name.value] = definition
        if operation is None or operation.operation != OperationType.QUERY:
            raise Unsupported("not one query operation")
        if operation.variable_definitions:
            raise Unsupported("variables")
        if schema.query_type is None:
            raise Unsupported("no query type")
        self.schema, self.fragments, self.operation, self.context = schema, fragments, operation, context
        self.variables: dict = {}

    def run(self) -> dict:
        root = self.schema.query_type
        fields = collect_fields(self.schema, self.fragments, self.variables, root, self.operation.selection_set)
        return self._object_plan(root, fields)(None, _root_get)

    # --- plans ----------------------------------------------------------------------------------

    def _object_plan(self, parent_type, fields: dict) -> Run:
        """The runner for ``fields`` (response key -> merged field nodes) of ``parent_type``."""
        if parent_type.is_type_of is not None:
            raise Unsupported(f"{parent_type.name}.is_type_of")
        entries = []
        for key, nodes in fields.items():
            name = nodes[0].name.value
            if name == "__typename":
                field_def = TypeNameMetaFieldDef
            elif name in ("__schema", "__type") and parent_type is self.schema.query_type:
                raise Unsupported("introspection")
            else:
                field_def = parent_type.fields.get(name)
                if field_def is None:  # graphql-core leaves the key out
                    continue
            info = GraphQLResolveInfo(name, nodes, field_def.type, parent_type, None, self.schema, self.fragments,
                                      None, self.operation, self.variables, self.context, is_awaitable)
            args = get_argument_values(field_def, nodes[0], self.variables)
            keep, complete = self._completer(field_def.type, nodes)
            entries.append((key, name, field_def.resolve, info, args, keep, complete))
        entries = tuple(entries)

        def run(source, get) -> dict:
            out = {}
            for key, name, resolve, info, args, keep, complete in entries:
                value = get(name) if resolve is None else resolve(source, info, **args)
                out[key] = value if value.__class__ in keep else complete(value)
            return out

        return run

    def _completer(self, type_, nodes, non_null: bool = False) -> tuple[frozenset, Complete]:
        """(classes of values kept as they are, completion of any other value) for ``type_``.

        Completion is graphql-core's ``complete_value``, raising :class:`Unsupported` where that
        would record an error (the fallback then reports it). A non-null wrapper is folded into
        the completion of its inner type (``non_null``).
        """
        if is_non_null_type(type_):
            return self._completer(type_.of_type, nodes, True)
        nullable = _NOTHING if non_null else frozenset({_NONE})
        if is_leaf_type(type_):
            keep, complete_leaf = self._leaf(type_)
            if not non_null:
                return keep | nullable, complete_leaf

            def complete_non_null_leaf(value):
                value = complete_leaf(value)
                if value is None:
                    raise Unsupported("null in a non-null field")
                return value

            return keep, complete_non_null_leaf
        if is_list_type(type_):
            item_keep, item = self._completer(type_.of_type, nodes)

            def complete_list(value):
                if value.__class__ is list or value.__class__ is tuple:
                    return [x if x.__class__ in item_keep else item(x) for x in value]
                if value is None and not non_null:
                    return None
                raise Unsupported("list value that is not a list, or a null in a non-null field")

            return nullable, complete_list
        if is_abstract_type(type_) or is_object_type(type_):
            run_for = self._abstract(type_, nodes) if is_abstract_type(type_) else self._concrete(type_, nodes)

            def complete_object(value):
                if value.__class__ is dict:
                    return run_for(value)(value, value.get)
                if value is None and not non_null:
                    return None
                raise Unsupported("object value that is not a dict, or a null in a non-null field")

            return nullable, complete_object
        raise Unsupported(f"type {type_}")

    def _concrete(self, type_, nodes) -> Callable[[dict], Run]:
        """An object type: one plan, whatever the value."""
        run = self._object_plan(type_, collect_sub_fields(self.schema, self.fragments, self.variables, type_, nodes))
        return lambda _value: run

    def _abstract(self, type_, nodes) -> Callable[[dict], Run]:
        """Interfaces and unions: the runtime type is the dict's ``__typename`` (graphql-core's default)."""
        if type_.resolve_type is not None:
            raise Unsupported(f"{type_.name}.resolve_type")
        schema, runs = self.schema, {}

        def run_for(value: dict) -> Run:
            type_name = value.get("__typename")
            run = runs.get(type_name) if type_name.__class__ is str else None
            if run is None:
                runtime = schema.get_type(type_name) if isinstance(type_name, str) else None
                if runtime is None or not is_object_type(runtime) or not schema.is_sub_type(type_, runtime):
                    raise Unsupported(f"runtime type {type_name!r} for {type_.name}")
                fields = collect_sub_fields(schema, self.fragments, self.variables, runtime, nodes)
                run = runs[type_name] = self._object_plan(runtime, fields)
            return run

        return run_for

    @staticmethod
    def _leaf(type_) -> tuple[frozenset, Complete]:
        serialize = type_.serialize
        if isinstance(type_, GraphQLEnumType):
            names = set()
            for name in type_.values:
                try:
                    if type_.serialize(name) == name:
                        names.add(name)
                except Exception:  # noqa: BLE001 - such a name just takes the general path
                    pass
            keep: frozenset = _NOTHING
        elif isinstance(type_, GraphQLScalarType) and serialize is GraphQLScalarType.serialize:
            names, keep = set(), _PLAIN
        else:
            names, keep = set(), _IDENTITY.get(serialize, _NOTHING)

        def complete_leaf(value):
            if value is None:
                return None
            if value.__class__ is str and value in names:
                return value
            if callable(value) or isinstance(value, Exception):
                raise Unsupported("callable or exception value")  # the default resolver would call it
            serialized = serialize(value)
            if serialized is None or serialized is Undefined:
                raise Unsupported(f"{type_.name} does not serialize {value!r}")
            return serialized

        return keep, complete_leaf
