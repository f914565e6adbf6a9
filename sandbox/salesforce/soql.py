"""SOQL parsing: the subset integrations send, turned into a small syntax tree with positions so
errors can point at the offending column the way the platform does.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

_TOKEN_RE = re.compile(
    r"""
     (?P<ws>\s+)
    |(?P<str>'(?:[^'\\]|\\.)*')
    |(?P<dt>\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:Z|[+-]\d{2}:?\d{2}))
    |(?P<date>\d{4}-\d{2}-\d{2}(?![\dT]))
    |(?P<num>[+-]?\d+(?:\.\d+)?)
    |(?P<op>!=|<>|<=|>=|=|<|>)
    |(?P<punct>[(),:])
    |(?P<ident>[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*)
    """,
    re.X,
)
_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "b": "\b", "f": "\f", "'": "'", '"': '"', "\\": "\\"}
DATE_LITERALS = {"TODAY", "YESTERDAY", "TOMORROW"}
N_DATE_LITERALS = {"LAST_N_DAYS", "NEXT_N_DAYS", "N_DAYS_AGO"}
_CLAUSE_WORDS = {"WHERE", "ORDER", "LIMIT", "OFFSET", "GROUP", "HAVING", "WITH", "FOR", "USING", "ALL"}


class SoqlError(Exception):
    """A query the platform would refuse: errorCode plus the message with the caret."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def located(text: str, pos: int, message: str) -> str:
    """The platform's error layout: the query line, a caret, the row and column, the reason."""
    before = text[:pos]
    row = before.count("\n") + 1
    line_start = before.rfind("\n") + 1
    line_end = text.find("\n", pos)
    line = text[line_start: line_end if line_end >= 0 else len(text)]
    col = pos - line_start + 1
    return f"\n{line}\n{' ' * (col - 1)}^\nERROR at Row:{row}:Column:{col}\n{message}"


@dataclass(frozen=True)
class Token:
    kind: str
    text: str
    pos: int

    @property
    def upper(self) -> str:
        return self.text.upper()


@dataclass(frozen=True)
class FieldRef:
    path: tuple[str, ...]
    pos: int


@dataclass(frozen=True)
class Literal:
    kind: str  # string | number | bool | null | date | datetime | dateliteral
    value: object
    pos: int
    raw: str = ""
    n: int = 0


@dataclass(frozen=True)
class Compare:
    field: FieldRef
    op: str
    value: Literal


@dataclass(frozen=True)
class InList:
    field: FieldRef
    values: tuple[Literal, ...]
    negate: bool


@dataclass(frozen=True)
class Like:
    field: FieldRef
    pattern: Literal


@dataclass(frozen=True)
class BoolOp:
    op: str  # AND | OR
    items: tuple[object, ...]


@dataclass(frozen=True)
class Not:
    item: object


@dataclass(frozen=True)
class OrderItem:
    field: FieldRef
    desc: bool
    nulls_last: bool


@dataclass
class Query:
    text: str
    sobject: str
    sobject_pos: int
    fields: list[FieldRef] = field(default_factory=list)
    count: bool = False
    where: object | None = None
    order: list[OrderItem] = field(default_factory=list)
    limit: int | None = None
    offset: int | None = None


def tokenize(text: str) -> list[Token]:
    """Split SOQL into tokens (raises MALFORMED_QUERY on a character it cannot read)."""
    tokens: list[Token] = []
    pos = 0
    while pos < len(text):
        m = _TOKEN_RE.match(text, pos)
        if not m:
            bad = text[pos:].split()[0] if text[pos:].strip() else text[pos]
            if bad.startswith("'"):
                raise SoqlError("MALFORMED_QUERY", located(text, pos, "unterminated string literal: close it with a single quote"))
            raise SoqlError("MALFORMED_QUERY", located(text, pos, f"unexpected token: '{bad}'"))
        kind = m.lastgroup or ""
        if kind != "ws":
            tokens.append(Token(kind, m.group(), pos))
        pos = m.end()
    return tokens


def unescape(raw: str) -> str:
    """The value of a quoted SOQL string (quotes removed, escapes decoded; LIKE escapes kept)."""
    body = raw[1:-1]
    out, i = [], 0
    while i < len(body):
        ch = body[i]
        if ch == "\\" and i + 1 < len(body):
            nxt = body[i + 1]
            out.append(_ESCAPES.get(nxt, "\\" + nxt))
            i += 2
            continue
        out.append(ch)
        i += 1
    return "".join(out)


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.tokens = tokenize(text)
        self.i = 0

    # token helpers
    def peek(self, offset: int = 0) -> Token | None:
        j = self.i + offset
        return self.tokens[j] if j < len(self.tokens) else None

    def next(self) -> Token:
        tok = self.peek()
        if tok is None:
            raise self.error_at(len(self.text), "unexpected token: <EOF>")
        self.i += 1
        return tok

    def at_word(self, *words: str) -> bool:
        tok = self.peek()
        return tok is not None and tok.kind == "ident" and tok.upper in words

    def expect_word(self, word: str) -> Token:
        tok = self.peek()
        if tok is None or tok.kind != "ident" or tok.upper != word:
            raise self.unexpected(tok)
        return self.next()

    def expect_punct(self, ch: str) -> Token:
        tok = self.peek()
        if tok is None or tok.text != ch:
            raise self.unexpected(tok)
        return self.next()

    def error_at(self, pos: int, message: str) -> SoqlError:
        return SoqlError("MALFORMED_QUERY", located(self.text, pos, message))

    def unexpected(self, tok: Token | None) -> SoqlError:
        if tok is None:
            return self.error_at(len(self.text), "unexpected token: <EOF>")
        return self.error_at(tok.pos, f"unexpected token: '{tok.text}'")

    # grammar
    def query(self) -> Query:
        self.expect_word("SELECT")
        fields, count = self.select_list()
        self.expect_word("FROM")
        obj = self.next()
        if obj.kind != "ident" or "." in obj.text:
            raise self.unexpected(obj)
        q = Query(self.text, obj.text, obj.pos, fields, count)
        if self.at_word("USING"):
            raise self.error_at(self.next().pos, "USING SCOPE is not supported by this org")
        if self.at_word("WHERE"):
            self.next()
            q.where = self.condition()
        if self.at_word("WITH"):
            self.next()
            self.expect_word("SECURITY_ENFORCED")
        if self.at_word("GROUP", "HAVING"):
            tok = self.next()
            raise self.error_at(tok.pos, f"{tok.upper} BY is not supported by this org's query engine")
        if self.at_word("ORDER"):
            self.next()
            self.expect_word("BY")
            q.order = self.order_list()
        if self.at_word("LIMIT"):
            self.next()
            q.limit = self.integer()
        if self.at_word("OFFSET"):
            self.next()
            q.offset = self.integer()
            if q.offset > 2000:
                raise SoqlError("NUMBER_OUTSIDE_VALID_RANGE", "Maximum SOQL offset allowed is 2000")
        if self.at_word("FOR"):
            self.next()
            if not self.at_word("VIEW", "REFERENCE", "UPDATE"):
                raise self.unexpected(self.peek())
            self.next()
        trailing = self.peek()
        if trailing is not None:
            raise self.unexpected(trailing)
        return q

    def integer(self) -> int:
        tok = self.next()
        if tok.kind != "num" or not tok.text.lstrip("+").isdigit():
            raise self.unexpected(tok)
        return int(tok.text)

    def select_list(self) -> tuple[list[FieldRef], bool]:
        tok = self.peek()
        if tok and tok.kind == "ident" and tok.upper == "COUNT" and self.peek(1) and self.peek(1).text == "(":  # type: ignore[union-attr]
            self.next()
            self.next()
            if self.peek() and self.peek().text != ")":  # type: ignore[union-attr]
                raise self.error_at(self.peek().pos, "Only COUNT() without a field is supported by this org")  # type: ignore[union-attr]
            self.expect_punct(")")
            return [], True
        fields = [self.field_ref(select=True)]
        while self.peek() and self.peek().text == ",":  # type: ignore[union-attr]
            self.next()
            fields.append(self.field_ref(select=True))
        return fields, False

    def field_ref(self, select: bool = False) -> FieldRef:
        tok = self.next()
        if tok.kind == "punct" and tok.text == "(" and select:
            raise self.error_at(tok.pos, "child relationship subqueries are not supported by this org")
        if tok.kind != "ident" or tok.upper in ("FROM", "WHERE") and not select:
            raise self.unexpected(tok)
        if self.peek() and self.peek().text == "(":  # type: ignore[union-attr]
            raise self.error_at(tok.pos, f"function {tok.text}() is not supported by this org")
        return FieldRef(tuple(tok.text.split(".")), tok.pos)

    def order_list(self) -> list[OrderItem]:
        items = []
        while True:
            ref = self.field_ref()
            desc = False
            if self.at_word("ASC", "DESC"):
                desc = self.next().upper == "DESC"
            nulls_last = desc
            if self.at_word("NULLS"):
                self.next()
                if not self.at_word("FIRST", "LAST"):
                    raise self.unexpected(self.peek())
                nulls_last = self.next().upper == "LAST"
            items.append(OrderItem(ref, desc, nulls_last))
            if self.peek() and self.peek().text == ",":  # type: ignore[union-attr]
                self.next()
                continue
            return items

    def condition(self) -> object:
        first = self.unary()
        op: str | None = None
        items = [first]
        while self.at_word("AND", "OR"):
            tok = self.next()
            if op and tok.upper != op:
                # SOQL refuses AND and OR at one level without parentheses.
                raise self.error_at(tok.pos, f"unexpected token: '{tok.text}'")
            op = tok.upper
            items.append(self.unary())
        return first if op is None else BoolOp(op, tuple(items))

    def unary(self) -> object:
        if self.at_word("NOT"):
            self.next()
            return Not(self.unary())
        tok = self.peek()
        if tok is not None and tok.text == "(":
            self.next()
            inner = self.condition()
            self.expect_punct(")")
            return inner
        return self.predicate()

    def predicate(self) -> object:
        ref = self.field_ref()
        tok = self.next()
        if tok.kind == "op":
            op = "!=" if tok.text == "<>" else tok.text
            return Compare(ref, op, self.literal())
        word = tok.upper if tok.kind == "ident" else ""
        if word == "LIKE":
            return Like(ref, self.literal())
        if word == "IN" or (word == "NOT" and self.at_word("IN")):
            negate = word == "NOT"
            if negate:
                self.next()
            self.expect_punct("(")
            values = [self.literal()]
            while self.peek() and self.peek().text == ",":  # type: ignore[union-attr]
                self.next()
                values.append(self.literal())
            self.expect_punct(")")
            return InList(ref, tuple(values), negate)
        raise self.unexpected(tok)

    def literal(self) -> Literal:
        tok = self.next()
        if tok.kind == "str":
            return Literal("string", unescape(tok.text), tok.pos, raw=tok.text[1:-1])
        if tok.kind == "num":
            return Literal("number", float(tok.text) if "." in tok.text else int(tok.text), tok.pos, raw=tok.text)
        if tok.kind == "dt":
            return Literal("datetime", tok.text, tok.pos, raw=tok.text)
        if tok.kind == "date":
            return Literal("date", tok.text, tok.pos, raw=tok.text)
        if tok.kind == "ident":
            word = tok.upper
            if word in ("TRUE", "FALSE"):
                return Literal("bool", word == "TRUE", tok.pos, raw=tok.text)
            if word == "NULL":
                return Literal("null", None, tok.pos, raw=tok.text)
            if word in DATE_LITERALS:
                return Literal("dateliteral", word, tok.pos, raw=tok.text)
            if word in N_DATE_LITERALS:
                self.expect_punct(":")
                n = self.integer()
                return Literal("dateliteral", word, tok.pos, raw=f"{tok.text}:{n}", n=n)
        raise self.unexpected(tok)


def parse(text: str) -> Query:
    """Parse a SOQL statement (raises SoqlError with MALFORMED_QUERY)."""
    if not text or not text.strip():
        raise SoqlError("MALFORMED_QUERY", "A query string has to be specified")
    return _Parser(text).query()
