"""The DQL tokenizer: text → tokens, each with its line, column and offsets."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum, auto

from dql.errors import ParseError


class TokenType(Enum):
    """Every kind of token DQL knows."""

    IDENT = auto()
    STRING = auto()
    NUMBER = auto()
    DOT = auto()
    COMMA = auto()
    L_PAREN = auto()
    R_PAREN = auto()
    L_BRACKET = auto()
    R_BRACKET = auto()
    EQ = auto()
    NEQ = auto()
    LT = auto()
    LTE = auto()
    GT = auto()
    GTE = auto()
    SEMICOLON = auto()
    # keywords
    SELECT = auto()
    SLICE = auto()
    CONSTRUCT = auto()
    EVALUATE = auto()
    FROM = auto()
    WHERE = auto()
    MUTATE = auto()
    AND = auto()
    OR = auto()
    NOT = auto()
    LIKE = auto()
    ILIKE = auto()
    ESCAPE = auto()
    HAS = auto()
    IN = auto()
    WITH = auto()
    VARY = auto()
    AUTO = auto()
    KEEP = auto()
    TOP = auto()
    AFTER = auto()
    ORDER = auto()
    BY = auto()
    ASC = auto()
    DESC = auto()
    LIMIT = auto()
    AS = auto()
    TRUE = auto()
    FALSE = auto()
    NULL = auto()
    EOF = auto()


#: Reserved words (case-insensitive). Words such as ``next``, ``insert`` or ``config`` are
#: ordinary identifiers that the parser recognises by position.
KEYWORDS: dict[str, TokenType] = {
    t.name.lower(): t for t in TokenType if TokenType.SELECT.value <= t.value < TokenType.EOF.value
}

SINGLE_TOKENS: dict[str, TokenType] = {
    ".": TokenType.DOT,
    ",": TokenType.COMMA,
    "(": TokenType.L_PAREN,
    ")": TokenType.R_PAREN,
    "[": TokenType.L_BRACKET,
    "]": TokenType.R_BRACKET,
    "=": TokenType.EQ,
    "<": TokenType.LT,
    ">": TokenType.GT,
    ";": TokenType.SEMICOLON,
}

DOUBLE_TOKENS: dict[str, TokenType] = {
    "!=": TokenType.NEQ,
    "<>": TokenType.NEQ,
    "<=": TokenType.LTE,
    ">=": TokenType.GTE,
    "==": TokenType.EQ,
}

STRING_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "\\": "\\", '"': '"', "'": "'"}


@dataclass(frozen=True, slots=True)
class Token:
    """One token: its type, its text (a string's value for STRING), and where it is.

    ``line`` and ``col`` are 1-based; ``start``/``end`` are offsets into the query text.
    """

    type: TokenType
    text: str
    line: int
    col: int
    start: int
    end: int


class Tokenizer:
    """Turns DQL text into a list of :class:`Token`, ending with an EOF token."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0
        self.line = 1
        self.line_start = 0
        self.tokens: list[Token] = []

    def tokenize(self) -> list[Token]:
        """Scan the whole text. Raises :class:`ParseError` (code ``token``) on bad input."""
        while self._skip_blank():
            self._scan_token()
        self._add(TokenType.EOF, "", self.pos, self.pos)
        return self.tokens

    def _error(self, message: str, start: int, end: int) -> ParseError:
        return ParseError(message, query=self.text, start=start, end=end, code="token")

    def _add(self, type_: TokenType, text: str, start: int, end: int) -> None:
        line = self.text.count("\n", 0, start) + 1
        col = start - (self.text.rfind("\n", 0, start) + 1) + 1
        self.tokens.append(Token(type_, text, line, col, start, end))

    def _skip_blank(self) -> bool:
        text = self.text
        while self.pos < len(text):
            if text[self.pos].isspace():
                self.pos += 1
            elif text.startswith("--", self.pos) or text.startswith("//", self.pos):
                newline = text.find("\n", self.pos)
                self.pos = len(text) if newline == -1 else newline
            else:
                return True
        return False

    def _scan_token(self) -> None:
        char = self.text[self.pos]
        if char in "\"'":
            self._scan_string(char)
        elif char.isdigit() or (char in "-+." and self._peek_digit()):
            self._scan_number()
        elif char.isalpha() or char == "_":
            self._scan_word()
        else:
            self._scan_symbol()

    def _peek_digit(self) -> bool:
        nxt = self.text[self.pos + 1 : self.pos + 2]
        if self.text[self.pos] == "." or not nxt:
            return nxt.isdigit() and not self._after_value()
        return (nxt.isdigit() or nxt == ".") and not self._after_value()

    def _after_value(self) -> bool:
        if not self.tokens:
            return False
        last = self.tokens[-1].type
        return last in (
            TokenType.IDENT,
            TokenType.NUMBER,
            TokenType.STRING,
            TokenType.R_PAREN,
            TokenType.R_BRACKET,
        )

    def _scan_string(self, quote: str) -> None:
        start, self.pos = self.pos, self.pos + 1
        chars: list[str] = []
        while self.pos < len(self.text):
            char = self.text[self.pos]
            if char == quote:
                self.pos += 1
                self._add(TokenType.STRING, "".join(chars), start, self.pos)
                return
            if char == "\\" and self.pos + 1 < len(self.text):
                nxt = self.text[self.pos + 1]
                chars.append(STRING_ESCAPES.get(nxt, "\\" + nxt))
                self.pos += 2
                continue
            chars.append(char)
            self.pos += 1
        raise self._error("Unterminated string", start, len(self.text))

    def _scan_number(self) -> None:
        start = self.pos
        self.pos += 1
        text = self.text
        while self.pos < len(text) and (text[self.pos].isdigit() or text[self.pos] in ".eE"):
            if text[self.pos] in "eE" and text[self.pos + 1 : self.pos + 2] in ("-", "+"):
                self.pos += 1
            self.pos += 1
        literal = text[start : self.pos]
        try:
            float(literal)
        except ValueError:
            raise self._error(f"Invalid number {literal!r}", start, self.pos) from None
        self._add(TokenType.NUMBER, literal, start, self.pos)

    def _scan_word(self) -> None:
        start = self.pos
        while self.pos < len(self.text) and (
            self.text[self.pos].isalnum() or self.text[self.pos] == "_"
        ):
            self.pos += 1
        word = self.text[start : self.pos]
        self._add(KEYWORDS.get(word.lower(), TokenType.IDENT), word, start, self.pos)

    def _scan_symbol(self) -> None:
        start = self.pos
        pair = self.text[start : start + 2]
        if pair in DOUBLE_TOKENS:
            self.pos += 2
            self._add(DOUBLE_TOKENS[pair], pair, start, self.pos)
        elif pair[0] in SINGLE_TOKENS:
            self.pos += 1
            self._add(SINGLE_TOKENS[pair[0]], pair[0], start, self.pos)
        else:
            raise self._error(f"Unexpected character {pair[0]!r}", start, start + 1)


def tokenize(text: str) -> list[Token]:
    """Tokenize DQL text; the last token is always EOF."""
    return Tokenizer(text).tokenize()
