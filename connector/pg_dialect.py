"""Translate the SQLite SQL the connector writes into PostgreSQL, so one set of queries serves both ledgers.

Modules all over ``connector/`` and ``adapters/`` run SQL through ``ledger.conn``
in SQLite's dialect. Rather than fork every query, the PostgreSQL connection
(:mod:`connector.ledger_postgres`) passes each statement through
:func:`translate`, which rewrites exactly the constructs the code uses, outside
string literals and comments:

==============================  ==========================================
SQLite                          PostgreSQL
==============================  ==========================================
``?``                           ``%s`` (psycopg placeholder)
``%`` (e.g. in ``LIKE '%x'``)   ``%%`` (psycopg would read it as a placeholder)
``INSERT OR IGNORE INTO t``     ``INSERT INTO t ... ON CONFLICT DO NOTHING``
``json_extract(c, '$.a.b')``    ``(c::jsonb #>> '{a,b}')``
``instr(a, b)``                 ``strpos(a, b)``
``MAX(a, b)`` / ``MIN(a, b)``   ``GREATEST(a, b)`` / ``LEAST(a, b)`` (scalar forms only)
==============================  ==========================================

Anything else SQLite-only that a statement asks for (``INSERT OR REPLACE``,
``sqlite_master``) raises :class:`UnsupportedSQL` naming it, rather than
failing later with a PostgreSQL syntax error.
"""

from __future__ import annotations

import re
from functools import lru_cache


class UnsupportedSQL(ValueError):
    """A statement uses SQLite-only SQL that has no translation here."""


_TOKEN = re.compile(r"'(?:[^']|'')*'|\"(?:[^\"]|\"\")*\"|--[^\n]*|/\*.*?\*/|[^'\"/-]+|.", re.S)


def split_sql(sql: str) -> list[tuple[bool, str]]:
    """``(is_code, text)`` pieces: literals, quoted names and comments are not code."""
    pieces: list[tuple[bool, str]] = []
    for match in _TOKEN.finditer(sql):
        text = match.group(0)
        code = not (text[0] in "'\"" or text.startswith("--") or text.startswith("/*"))
        if pieces and pieces[-1][0] == code and code:
            pieces[-1] = (True, pieces[-1][1] + text)
        else:
            pieces.append((code, text))
    return pieces


def _args(sql: str, start: int) -> tuple[list[str], int]:
    """The top-level arguments of the call whose ``(`` is at ``start``, and the index after its ``)``."""
    depth, args, begin, i, quote = 0, [], start + 1, start, None
    while i < len(sql):
        ch = sql[i]
        if quote:
            if ch == quote:
                quote = None
        elif ch in "'\"":
            quote = ch
        elif ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
            if depth == 0:
                args.append(sql[begin:i])
                return args, i + 1
        elif ch == "," and depth == 1:
            args.append(sql[begin:i])
            begin = i + 1
        i += 1
    raise UnsupportedSQL(f"unbalanced parentheses in: {sql[:200]}")


_CALL = re.compile(r"\b(json_extract|instr|max|min)\s*\(", re.I)


def translate_functions(sql: str) -> str:
    """Rewrite the SQLite functions (on the whole statement: their arguments may hold literals)."""
    out, pos = [], 0
    for match in _CALL.finditer(sql):
        if match.start() < pos:
            continue  # inside a call already rewritten
        name = match.group(1).lower()
        args, end = _args(sql, match.end() - 1)
        if name in ("max", "min") and len(args) < 2:
            continue  # the aggregate: the same in both
        inner = [translate_functions(a) for a in args]
        if name == "json_extract":
            path = inner[1].strip()
            if not re.fullmatch(r"'\$(\.[A-Za-z0-9_]+)*'", path):
                raise UnsupportedSQL(f"json_extract path {path} (only '$.a.b' paths translate)")
            keys = path[3:-1].split(".") if path != "'$'" else []
            call = f"(({inner[0].strip()})::jsonb #>> '{{{','.join(keys)}}}')"
        elif name == "instr":
            call = f"strpos({','.join(inner)})"
        else:
            call = f"{'GREATEST' if name == 'max' else 'LEAST'}({','.join(inner)})"
        out.append(sql[pos:match.start()] + call)
        pos = end
    out.append(sql[pos:])
    return "".join(out)


_OR_IGNORE = re.compile(r"^\s*INSERT\s+OR\s+IGNORE\s+INTO\b", re.I)
_OR_OTHER = re.compile(r"^\s*INSERT\s+OR\s+(\w+)", re.I)
_RETURNING = re.compile(r"\bRETURNING\b", re.I)


@lru_cache(maxsize=2048)
def translate(sql: str) -> str:
    """The PostgreSQL form of one SQLite statement (see the module docstring for what changes).

    Raises:
        UnsupportedSQL: the statement uses SQLite-only SQL with no translation.
    """
    if re.search(r"\bsqlite_(master|schema|sequence)\b", sql, re.I):
        raise UnsupportedSQL("sqlite_master and friends exist only in SQLite")
    ignore = bool(_OR_IGNORE.match(sql))
    if ignore:
        sql = _OR_IGNORE.sub("INSERT INTO", sql, count=1)
    elif _OR_OTHER.match(sql):
        raise UnsupportedSQL(f"INSERT OR {_OR_OTHER.match(sql).group(1).upper()} has no PostgreSQL translation; "
                             "write INSERT ... ON CONFLICT (...) DO UPDATE")
    sql = translate_functions(sql)
    parts = []
    for code, text in split_sql(sql):
        text = text.replace("%", "%%")  # psycopg reads % anywhere in the statement, literals too
        parts.append(text.replace("?", "%s") if code else text)
    sql = "".join(parts)
    if ignore:
        sql = sql.rstrip().rstrip(";")
        returning = _RETURNING.search(sql)
        if returning:
            sql = f"{sql[:returning.start()]}ON CONFLICT DO NOTHING {sql[returning.start():]}"
        else:
            sql += " ON CONFLICT DO NOTHING"
    return sql
