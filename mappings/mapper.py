"""The declarative Mapper: one source record (vendor JSON) -> a dict of canonical fields.

The shape is OCA connector's Mapper, without its component registry
(DESIGN.md "House style"). A mapper class declares, and :meth:`Mapper.map`
applies in this order:

1. ``direct``: ``(source path, target field[, converter])`` pairs. A path is
   dotted (``"billing.email"``). A plain path is required: a missing key
   raises ``KeyError`` naming it, exactly as ``record["key"]`` would. A path
   ending in ``?`` is optional: a missing key or a null parent gives ``None``.
   The converter is a callable, or the name of a method of the mapper when
   it needs the mapper's options (``"money"`` -> ``self.money(value)``).
2. methods decorated with :func:`mapping`, in definition order: each takes the
   record and returns a dict of target fields (for fields that combine
   several source fields, or need the options).
3. ``children``: ``(source path, target field, child mapper[, reader])`` for
   lines, shipping and fee lines. The path is read as optional; ``reader``
   turns its value into a list of records (default ``value or []``). Each
   record is built into the child's ``target`` dataclass, unless the child's
   :meth:`Mapper.skip` says to leave it out; the field gets a tuple.
4. :meth:`Mapper.finalize`: ``(record, fields) -> fields``, for the special
   lines that need the other fields (order-level discounts, tips, fees).

Options given to the constructor (``store``, which money side books, ...)
are attributes of the mapper and passed on to its children
(:meth:`Mapper.child_options`). The caller builds the dataclass from the
fields: ``Order(**OrderMapper(store=store).map(record))``.

Errors: while reading the record (steps 1-3), the outermost ``map`` turns
the exception types in ``catch`` into the
:class:`~connector.errors.MappingError` that :meth:`Mapper.error` returns
(naming the record and what is missing); children's errors reach it
unchanged. ``finalize`` works on fields already read, outside that net:
what it raises propagates as is. Pure: mappers do no I/O.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar

from connector.errors import MappingError

_MAPPING = "__o2c_mapping__"


def mapping(method: Callable[[Any, dict], dict]) -> Callable[[Any, dict], dict]:
    """Mark a mapper method ``(self, record) -> {target field: value}`` as part of the mapping."""
    setattr(method, _MAPPING, True)
    return method


def read(record: Any, path: str) -> Any:
    """The value at a dotted ``path`` of ``record``; a trailing ``?`` makes the path optional.

    Args:
        record: a dict (vendor JSON).
        path: ``"a.b"`` (required: ``KeyError`` when missing) or ``"a.b?"`` (optional: ``None``).
    """
    optional = path.endswith("?")
    value = record
    for key in path.rstrip("?").split("."):
        if optional:
            value = value.get(key) if value else None
        else:
            value = value[key]
    return value


class Mapper:
    """Base of the declarative mappers; subclasses set the class attributes below."""

    #: ``(source path, target field[, converter])`` pairs.
    direct: ClassVar[tuple[tuple, ...]] = ()
    #: ``(source path, target field, child mapper class[, reader])``.
    children: ClassVar[tuple[tuple, ...]] = ()
    #: the dataclass a child mapper's records become (used by :meth:`build`).
    target: ClassVar[type | None] = None
    #: exception types :meth:`map` reports as a :class:`MappingError`.
    catch: ClassVar[tuple[type[BaseException], ...]] = (KeyError,)
    _mappings: ClassVar[tuple[str, ...]] = ()

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        inherited = [name for name in cls._mappings if name not in vars(cls)]
        own = [name for name, value in vars(cls).items() if getattr(value, _MAPPING, False)]
        cls._mappings = tuple(inherited + own)

    def __init__(self, **options):
        self.options = options
        for name, value in options.items():
            setattr(self, name, value)

    def map(self, record: dict) -> dict:
        """The target fields for ``record``.

        Raises:
            MappingError: when reading the record or finalizing it raised one of ``catch``.
        """
        try:
            # finalize too: a payload that breaks a special line must be a visible reject, not a crash.
            return self.finalize(record, self.fields(record))
        except self.catch as exc:
            raise self.error(record, exc) from exc

    def fields(self, record: dict) -> dict:
        """Direct pairs, then mappings, then children (without :meth:`finalize`); errors unchanged."""
        result = {}
        for pair in self.direct:
            source, field = pair[0], pair[1]
            value = read(record, source)
            if len(pair) > 2:
                convert = getattr(self, pair[2]) if isinstance(pair[2], str) else pair[2]
                value = convert(value)
            result[field] = value
        for name in self._mappings:
            result.update(getattr(self, name)(record))
        if self.children:
            options = self.child_options(record)
            for spec in self.children:
                source, field, child_class = spec[:3]
                reader = spec[3] if len(spec) > 3 else _items
                child = child_class(**options)
                built = (child.build(item) for item in reader(read(record, source.rstrip("?") + "?")))
                result[field] = tuple(item for item in built if item is not None)
        return result

    def build(self, record: dict):
        """``record`` as this mapper's ``target`` dataclass, or None when :meth:`skip` says so."""
        if self.skip(record):
            return None
        return self.target(**self.finalize(record, self.fields(record)))

    @classmethod
    def one(cls, record: dict | None, **options):
        """Build a single nested record (an address), or None when there is none."""
        return cls(**options).build(record) if record else None

    def skip(self, record: dict) -> bool:
        """True to leave ``record`` out of its parent's children (e.g. moves no booked money)."""
        return False

    def child_options(self, record: dict) -> dict:
        """The options children are built with; override to add what they need from the record."""
        return self.options

    def finalize(self, record: dict, fields: dict) -> dict:
        """Add or adjust fields that depend on the others (special lines); returns the fields."""
        return fields

    def error(self, record: dict, exc: BaseException) -> MappingError:
        """The error :meth:`map` raises for ``exc``; override to name the record as the vendor does."""
        return MappingError(f"{type(self).__name__}: the record is missing {exc}",
                            what_to_do="check the source sends this field; report the payload")


def _items(value) -> list:
    return value or []
