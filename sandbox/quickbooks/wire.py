"""JSON on the QuickBooks wire: exact decimals in, exact numbers out, timestamps, envelopes.

Amounts are JSON numbers on the wire (notes §0) but this emulator computes with
``Decimal`` only: bodies are parsed with ``parse_float=Decimal`` and written back by a
small serializer that prints each ``Decimal`` digit for digit (``40.0``, ``19.99``),
so no float ever touches money. Every response carries ``time`` in the body and an
``intuit_tid`` header (notes §0, §6).
"""

from __future__ import annotations

import json
import time as _time
import uuid
from datetime import datetime, timedelta, timezone
from decimal import Decimal, InvalidOperation

from starlette.responses import Response


def loads(raw: bytes | str):
    """Parse a JSON body; floats become ``Decimal`` (never ``float``)."""
    return json.loads(raw, parse_float=Decimal)


def _number(value: Decimal) -> str:
    if not value.is_finite():
        raise ValueError(f"non-finite amount {value!r}")
    text = format(value, "f")
    # QuickBooks prints amounts with a decimal point (``100.0``, ``0.0``), never ``1E+2``.
    return text if "." in text else text + ".0"


def dumps(value) -> str:
    """Serialize ``value`` to compact JSON, printing ``Decimal`` exactly."""
    parts: list[str] = []
    _emit(value, parts)
    return "".join(parts)


def _emit(value, out: list[str]) -> None:
    if value is None:
        out.append("null")
    elif value is True:
        out.append("true")
    elif value is False:
        out.append("false")
    elif isinstance(value, str):
        out.append(json.dumps(value, ensure_ascii=False))
    elif isinstance(value, Decimal):
        out.append(_number(value))
    elif isinstance(value, int):
        out.append(str(value))
    elif isinstance(value, float):  # pragma: no cover - nothing should produce floats
        out.append(repr(value))
    elif isinstance(value, dict):
        out.append("{")
        for index, (key, item) in enumerate(value.items()):
            if index:
                out.append(",")
            out.append(json.dumps(str(key), ensure_ascii=False))
            out.append(":")
            _emit(item, out)
        out.append("}")
    elif isinstance(value, (list, tuple)):
        out.append("[")
        for index, item in enumerate(value):
            if index:
                out.append(",")
            _emit(item, out)
        out.append("]")
    else:
        raise TypeError(f"cannot serialize {type(value).__name__}")


def to_decimal(value) -> Decimal | None:
    """Read an amount sent as a number or numeric string; ``""``/``None`` mean absent.

    python-quickbooks sends ``"TotalAmt": ""`` on new objects and its ``DecimalEncoder``
    turns ``Decimal`` into strings (notes §5), so both shapes must be accepted.
    """
    if value is None or value == "" or isinstance(value, bool):
        return None
    if isinstance(value, Decimal):
        return value
    if isinstance(value, int):
        return Decimal(value)
    if isinstance(value, str):
        try:
            result = Decimal(value.strip())
        except InvalidOperation:
            raise ValueError(value) from None
        if not result.is_finite():
            raise ValueError(value)
        return result
    raise ValueError(value)


class Clock:
    """Wall clock with an adjustable offset, so tests can jump past token expiry."""

    def __init__(self, utc_offset: str = "-07:00"):
        self.skew = 0.0
        sign = -1 if utc_offset.startswith("-") else 1
        hours, minutes = utc_offset.lstrip("+-").split(":")
        # QBO answers in the company's time zone; sandbox companies are US Pacific (fixtures show -07:00).
        self.tz = timezone(sign * timedelta(hours=int(hours), minutes=int(minutes)))

    def now(self) -> float:
        """Seconds since the epoch, skew included."""
        return _time.time() + self.skew

    def advance(self, seconds: float) -> None:
        self.skew += seconds

    def datetime(self) -> datetime:
        return datetime.fromtimestamp(self.now(), self.tz)

    def stamp(self) -> str:
        """Envelope ``time``: ``2015-07-24T10:48:27.082-07:00``."""
        moment = self.datetime()
        return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}" + _offset(moment)

    def meta_stamp(self) -> str:
        """``MetaData`` times: seconds precision, ``2014-09-19T13:16:17-07:00``."""
        moment = self.datetime()
        return moment.strftime("%Y-%m-%dT%H:%M:%S") + _offset(moment)

    def today(self) -> str:
        return self.datetime().strftime("%Y-%m-%d")


def _offset(moment: datetime) -> str:
    text = moment.strftime("%z")
    return text[:3] + ":" + text[3:]


def new_tid() -> str:
    """A fresh ``intuit_tid`` (Intuit support asks for it; notes §0)."""
    return str(uuid.uuid4())


def json_response(body: dict, status: int = 200, headers: dict | None = None) -> Response:
    """A JSON response with an ``intuit_tid`` header; ``body`` must already hold ``time``."""
    return raw_response(dumps(body).encode("utf-8"), status, "application/json;charset=UTF-8", headers)


def raw_response(content: bytes, status: int, media_type: str, headers: dict | None = None) -> Response:
    """A response with the given bytes (used for verbatim requestid replays too)."""
    all_headers = {"intuit_tid": new_tid()}
    all_headers.update(headers or {})
    return Response(content, status_code=status, media_type=media_type, headers=all_headers)
