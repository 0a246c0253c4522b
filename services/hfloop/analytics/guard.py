"""Read-only and per-tenant enforcement of analyst SQL (pure functions, no I/O).

Two layers, both must pass (the session is also read-only, see querying.py):

1. :func:`check_statement` reads the text: exactly one statement, starting with SELECT or
   WITH, no SETTINGS/FORMAT/INTO OUTFILE clause, no function that reads files or URLs.
2. :func:`check_tree` reads ClickHouse's own analysis of the statement (``EXPLAIN QUERY
   TREE``): every table the query reads, however deep (subqueries, UNION, IN, JOIN, CTE), must
   be one of the caller's tenant views, and table functions are limited to number generators.
   The server resolves the names, so quoting tricks and aliases cannot hide a table.

A refusal is a :class:`Refused` naming why; the HTTP route answers it with 403.
"""

from __future__ import annotations

import re
from dataclasses import dataclass


class Refused(Exception):
    """The statement is not allowed; ``reason`` says why, in words for the caller."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


_WRITE_WORDS = {
    "INSERT", "ALTER", "DROP", "SYSTEM", "CREATE", "DELETE", "UPDATE", "TRUNCATE", "RENAME", "ATTACH",
    "DETACH", "OPTIMIZE", "GRANT", "REVOKE", "KILL", "SET", "USE", "EXCHANGE", "UNDROP", "BACKUP", "RESTORE",
    "REPLACE", "MOVE", "CHECK", "SHOW", "DESCRIBE", "DESC", "EXPLAIN", "EXISTS", "WATCH",
}  # fmt: skip
# Functions that reach outside the tables: files, URLs, other servers, dictionaries.
_DENIED_FUNCTIONS = {
    "file", "url", "urlcluster", "s3", "s3cluster", "gcs", "azureblobstorage", "hdfs", "hdfscluster", "remote",
    "remotesecure", "cluster", "clusterallreplicas", "mysql", "postgresql", "sqlite", "mongodb", "redis", "jdbc",
    "odbc", "input", "executable", "dictionary", "dictget", "dictgetordefault", "dictgetornull", "dicthas",
    "dictgethierarchy", "dictgetall", "joinget", "joingetornull", "getmacro", "getsetting", "getserversetting",
    "merge", "mergetreeindex", "iceberg", "deltalake", "hudi", "loop", "fuzzjson", "fuzzquery", "filesystem",
}  # fmt: skip
# Table functions that only generate numbers are harmless and handy for analysts.
ALLOWED_TABLE_FUNCTIONS = {
    "numbers",
    "numbers_mt",
    "zeros",
    "zeros_mt",
    "generate_series",
    "generateseries",
    "values",
}

_TOKEN = re.compile(
    r"""
    (?P<comment>--[^\n]*|\#[^\n]*|/\*.*?\*/)
  | (?P<string>'(?:[^'\\]|\\.|'')*')
  | (?P<quoted>"(?:[^"\\]|\\.)*"|`(?:[^`\\]|\\.)*`)
  | (?P<word>[A-Za-z_][A-Za-z0-9_]*)
  | (?P<semi>;)
  | (?P<other>\S)
    """,
    re.VERBOSE | re.DOTALL,
)


@dataclass(frozen=True)
class Token:
    kind: str
    text: str


def tokens(sql: str) -> list[Token]:
    """Words, quoted names, strings and symbols of ``sql``; comments dropped."""
    out = []
    for m in _TOKEN.finditer(sql):
        kind = m.lastgroup or "other"
        if kind != "comment":
            out.append(Token(kind, m.group()))
    unterminated = re.sub(_TOKEN, "", sql).strip()
    if unterminated.startswith(("'", '"', "`", "/*")):
        raise Refused("the statement has an unterminated string, quoted name or comment")
    return out


def check_statement(sql: str) -> None:
    """Raise :class:`Refused` unless ``sql`` is one read-only SELECT (or WITH ... SELECT)."""
    toks = tokens(sql)
    if not toks:
        raise Refused("empty statement")
    while toks and toks[-1].kind == "semi":
        toks.pop()
    if any(t.kind == "semi" for t in toks):
        raise Refused("multiple statements are refused: send one SELECT")
    words = [t.text.upper() for t in toks if t.kind == "word"]
    first = next((t for t in toks if t.text != "("), toks[0])
    head = first.text.upper()
    if head not in ("SELECT", "WITH"):
        if head in _WRITE_WORDS:
            raise Refused(f"{head} statements are refused: the query route is read-only (SELECT only)")
        raise Refused(f"only SELECT (or WITH ... SELECT) statements are allowed, not {first.text!r}")
    for i, w in enumerate(words):
        if w == "SETTINGS":
            raise Refused("SETTINGS clauses are refused: the session's limits cannot be overridden")
        if w == "FORMAT":
            raise Refused("FORMAT clauses are refused: the route chooses the output format")
        if w == "INTO" and i + 1 < len(words) and words[i + 1] == "OUTFILE":
            raise Refused("INTO OUTFILE is refused: results go back to the caller only")
        if w in ("INFILE",):
            raise Refused("INFILE is refused")
    for i, t in enumerate(toks):
        if t.kind == "word" and i + 1 < len(toks) and toks[i + 1].text == "(":
            name = t.text.lower()
            if name in _DENIED_FUNCTIONS or name.startswith("dictget"):
                raise Refused(
                    f"function {t.text}() is refused: it reads files, URLs, servers or dictionaries"
                )


@dataclass(frozen=True)
class TreeRefs:
    tables: tuple[str, ...]
    table_functions: tuple[str, ...]
    functions: tuple[str, ...]
    has_settings: bool


_TREE_TABLE = re.compile(r"\bTABLE id: \d+.*?\btable_name: (\S+)")
_TREE_TABLE_FUNCTION = re.compile(r"\bTABLE_FUNCTION id: \d+.*?\btable_function_name: ([^,\s]+)")
_TREE_FUNCTION = re.compile(r"\bFUNCTION id: \d+, function_name: ([^,\s]+)")


def tree_refs(explain: str) -> TreeRefs:
    """What an ``EXPLAIN QUERY TREE`` printout reads: tables, table functions, functions."""
    tables, tfuncs, funcs = [], [], []
    settings = False
    for line in explain.splitlines():
        s = line.strip()
        if s.startswith("TABLE id:"):
            m = _TREE_TABLE.search(s)
            tables.append(m.group(1).rstrip(",") if m else "?")
        elif s.startswith("TABLE_FUNCTION id:"):
            m = _TREE_TABLE_FUNCTION.search(s)
            tfuncs.append(m.group(1) if m else "?")
        elif s.startswith("FUNCTION id:"):
            m = _TREE_FUNCTION.search(s)
            if m:
                funcs.append(m.group(1))
        elif s.startswith("SETTINGS"):
            settings = True
    return TreeRefs(tuple(tables), tuple(tfuncs), tuple(funcs), settings)


def check_tree(refs: TreeRefs, allowed_tables: set[str]) -> None:
    """Raise :class:`Refused` unless every table read is an allowed (tenant) view."""
    for table in refs.tables:
        if table not in allowed_tables:
            short = table.split(".", 1)[-1]
            raise Refused(f"table {table} is not readable with this key; read the tenant's tables by their "
                          f"plain names (e.g. {short if '.' in table else 'interactions'})")  # fmt: skip
    for tf in refs.table_functions:
        if tf.lower() not in ALLOWED_TABLE_FUNCTIONS:
            raise Refused(
                f"table function {tf}() is refused: only {', '.join(sorted(ALLOWED_TABLE_FUNCTIONS))} are allowed"
            )
    for fn in refs.functions:
        if fn.lower() in _DENIED_FUNCTIONS or fn.lower().startswith("dictget"):
            raise Refused(f"function {fn}() is refused: it reads files, URLs, servers or dictionaries")
    if refs.has_settings:
        raise Refused("SETTINGS clauses are refused: the session's limits cannot be overridden")
