"""Field-by-field comparison of what a write would send with what the target holds now.

Pure functions (no I/O), used by ``o2c replay --dry-run`` (:mod:`connector.dry_run`).
Both sides are flattened into dotted paths (``Line[0].SalesItemLineDetail.ItemRef.value``,
``TotalAmt``, ``properties.amount``), then each path of what would be sent gets a row:

| status    | meaning                                                   |
|-----------|-----------------------------------------------------------|
| same      | the target already holds this value                        |
| changed   | the target holds another value; the write would replace it |
| new       | the target holds nothing at this path                      |

Paths the target holds but the write does not send are not rows: every write the
connector makes is a create, a sparse update or an upsert of named properties, so it
leaves them as they are (ids, SyncToken, MetaData, computed totals, HubSpot's own
``createdate`` ...). They are only counted (:attr:`Diff.untouched`).

Values are compared the way the targets store them: ``10.0``, ``10.00`` and ``10`` are
one number (a Decimal, an int or a decimal string; never zip codes such as ``01234``),
``True`` is ``"true"``, two ISO instants are equal when they name the same moment
(``...00.000Z`` and ``...00Z``), and ``None`` equals a missing or empty value.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any, Iterable

SAME, CHANGED, NEW = "same", "changed", "new"
_NUMBER = re.compile(r"^-?(0|[1-9][0-9]*)(\.[0-9]+)?$")  # no leading zeros: "01234" is a code, not a number
_INSTANT = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}")


@dataclass(frozen=True)
class FieldRow:
    """One path of what would be sent: its value, the target's, and how they compare."""

    path: str
    sent: str
    current: str | None  # None: the target holds nothing there
    status: str  # same | changed | new


@dataclass
class Diff:
    rows: list[FieldRow] = field(default_factory=list)
    untouched: int = 0  # paths only the target holds (left as they are)

    def count(self, status: str) -> int:
        return sum(1 for row in self.rows if row.status == status)

    @property
    def differing(self) -> list[FieldRow]:
        return [row for row in self.rows if row.status != SAME]


def flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    """``{"a": {"b": [1, {"c": 2}]}}`` -> ``{"a.b[0]": 1, "a.b[1].c": 2}`` (in the object's own order).

    An empty dict or list is a leaf of its own (``{}`` / ``[]``), so sending one shows.
    """
    out: dict[str, Any] = {}
    if isinstance(value, dict):
        if not value and prefix:
            out[prefix] = {}
        for key, item in value.items():
            out.update(flatten(item, f"{prefix}.{key}" if prefix else str(key)))
    elif isinstance(value, (list, tuple)):
        if not value and prefix:
            out[prefix] = []
        for index, item in enumerate(value):
            out.update(flatten(item, f"{prefix}[{index}]"))
    else:
        out[prefix] = value
    return out


def shown(value: Any) -> str:
    """How a value is printed in a diff row."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, dict):
        return "{}" if not value else str(value)
    if isinstance(value, (list, tuple)):
        return "[]" if not value else str(list(value))
    return str(value)


def _number(value: Any) -> Decimal | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float, Decimal)):
        try:
            return Decimal(str(value))
        except InvalidOperation:
            return None
    if isinstance(value, str) and _NUMBER.match(value.strip()):
        return Decimal(value.strip())
    return None


def _instant(value: Any) -> datetime | None:
    if not isinstance(value, str) or not _INSTANT.match(value):
        return None
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else None


def _blank(value: Any) -> bool:
    return value is None or value == "" or value == [] or value == {}


def equal(sent: Any, current: Any) -> bool:
    """Whether the target already holds ``sent`` (see the module docstring for the rules)."""
    if _blank(sent) or _blank(current):
        return _blank(sent) and _blank(current)
    if isinstance(sent, bool) or isinstance(current, bool):
        return shown(sent).lower() == shown(current).lower()
    a, b = _number(sent), _number(current)
    if a is not None and b is not None:
        return a == b
    t, u = _instant(sent), _instant(current)
    if t is not None and u is not None:
        return t == u
    return shown(sent) == shown(current)


def diff(sent: dict, current: dict | None, *, skip: Iterable[str] = ()) -> Diff:
    """Compare the body a write would send with what the target holds (None: nothing).

    ``skip`` names top-level request-only keys that are no field of the object
    (QuickBooks' ``sparse``), so they never show as "new".
    """
    skipped = set(skip)
    wanted = {path: value for path, value in flatten(sent).items() if _top(path) not in skipped}
    held = flatten(current) if current else {}
    result = Diff()
    for path, value in wanted.items():
        there = held.get(path)
        if _blank(there):  # the target holds nothing (or null) at this path
            result.rows.append(FieldRow(path, shown(value), None, SAME if _blank(value) else NEW))
        else:
            result.rows.append(FieldRow(path, shown(value), shown(there),
                                        SAME if equal(value, there) else CHANGED))
    result.untouched = sum(1 for path in held if path not in wanted and _top(path) not in skipped)
    return result


def _top(path: str) -> str:
    return re.split(r"[.\[]", path, maxsplit=1)[0]


def summary(result: Diff) -> str:
    """``2 changed, 1 new, 14 same``: the counts of a diff, zeros left out."""
    parts = [f"{n} {status}" for status in (CHANGED, NEW, SAME) if (n := result.count(status))]
    return ", ".join(parts) or "nothing to compare"
