"""The lexer of Go's text/template (text/template/parse/lex.go).

The whole input is scanned up front; the parser walks the item list (the items Go's lexer
would send on its channel, in the same order).
"""

from __future__ import annotations

import unicodedata
from collections.abc import Callable
from typing import Any

from pyollama.golang.fmt import format_unicode
from pyollama.golang.strconv import quote

(I_ERROR, I_BOOL, I_CHAR, I_CHAR_CONSTANT, I_COMMENT, I_COMPLEX, I_ASSIGN, I_DECLARE, I_EOF, I_FIELD,
 I_IDENTIFIER, I_LEFT_DELIM, I_LEFT_PAREN, I_NUMBER, I_PIPE, I_RAW_STRING, I_RIGHT_DELIM, I_RIGHT_PAREN,
 I_SPACE, I_STRING, I_TEXT, I_VARIABLE, I_KEYWORD, I_BLOCK, I_BREAK, I_CONTINUE, I_DOT, I_DEFINE, I_ELSE,
 I_END, I_IF, I_NIL, I_RANGE, I_TEMPLATE, I_WITH) = range(35)

_KEYWORDS = {".": I_DOT, "block": I_BLOCK, "break": I_BREAK, "continue": I_CONTINUE, "define": I_DEFINE,
             "else": I_ELSE, "end": I_END, "if": I_IF, "range": I_RANGE, "nil": I_NIL,
             "template": I_TEMPLATE, "with": I_WITH}
_SPACE = " \t\r\n"
_LEFT, _RIGHT = "{{", "}}"


class Item:
    __slots__ = ("line", "pos", "typ", "val")

    def __init__(self, typ: int, pos: int, val: str, line: int) -> None:
        self.typ = typ
        self.pos = pos
        self.val = val
        self.line = line

    def __str__(self) -> str:
        if self.typ == I_EOF:
            return "EOF"
        if self.typ == I_ERROR:
            return self.val
        if self.typ > I_KEYWORD:
            return f"<{self.val}>"
        if len(self.val.encode("utf-8", "surrogateescape")) > 10:  # Go measures bytes, truncates runes
            return quote(self.val[:10]) + "..."
        return quote(self.val)


def _is_alnum(ch: str) -> bool:
    return ch == "_" or ch.isalpha() or unicodedata.category(ch) == "Nd"


def _has_left_trim(s: str, i: int) -> bool:
    return i + 1 < len(s) and s[i] == "-" and s[i + 1] in _SPACE


def _has_right_trim(s: str, i: int) -> bool:
    return i + 1 < len(s) and s[i] in _SPACE and s[i + 1] == "-"


class Lexer:
    """Scans the whole input up front; the parser walks the item list (same items Go's channel yields)."""

    def __init__(self, text: str) -> None:
        self.input = text
        self.pos = 0
        self.start = 0
        self.paren_depth = 0
        self.items: list[Item] = []
        self._newlines = [i for i, c in enumerate(text) if c == "\n"]

    def line_at(self, pos: int) -> int:
        lo, hi = 0, len(self._newlines)
        while lo < hi:
            mid = (lo + hi) // 2
            if self._newlines[mid] < pos:
                lo = mid + 1
            else:
                hi = mid
        return lo + 1

    def run(self) -> list[Item]:
        state: Callable[[], Any] | None = self.lex_text
        while state is not None:
            state = state()
        return self.items

    def next(self) -> str:
        if self.pos >= len(self.input):
            self.pos = len(self.input) + 1  # mark EOF; backup() undoes it
            return ""
        ch = self.input[self.pos]
        self.pos += 1
        return ch

    def peek(self) -> str:
        return self.input[self.pos] if self.pos < len(self.input) else ""

    def backup(self) -> None:
        self.pos -= 1

    def emit(self, typ: int) -> None:
        self.items.append(Item(typ, self.start, self.input[self.start:self.pos], self.line_at(self.start)))
        self.start = self.pos

    def ignore(self) -> None:
        self.start = self.pos

    def errorf(self, msg: str) -> Callable[[], Any] | None:
        """Emit an error item and stop scanning (Go's lexer returns a nil state function)."""
        self.items.append(Item(I_ERROR, self.start, msg, self.line_at(self.start)))
        return None

    def at_terminator(self) -> bool:
        ch = self.peek()
        if ch == "" or ch in _SPACE or ch in ".,|:)(":
            return True
        return self.input.startswith(_RIGHT, self.pos)

    def at_right_delim(self) -> tuple[bool, bool]:
        if _has_right_trim(self.input, self.pos) and self.input.startswith(_RIGHT, self.pos + 2):
            return True, True
        if self.input.startswith(_RIGHT, self.pos):
            return True, False
        return False, False

    def lex_text(self) -> Callable[[], Any] | None:
        x = self.input.find(_LEFT, self.pos)
        if x >= 0:
            self.pos = x
            trim = 0
            if _has_left_trim(self.input, self.pos + len(_LEFT)):
                chunk = self.input[self.start:self.pos]
                trim = len(chunk) - len(chunk.rstrip(_SPACE))
            self.pos -= trim
            if self.pos > self.start:
                self.emit(I_TEXT)
            self.pos += trim
            self.ignore()
            return self.lex_left_delim
        self.pos = len(self.input)
        if self.pos > self.start:
            self.emit(I_TEXT)
        self.emit(I_EOF)
        return None

    def lex_left_delim(self) -> Callable[[], Any] | None:
        self.pos += len(_LEFT)
        trim = _has_left_trim(self.input, self.pos)
        after = 2 if trim else 0
        if self.input.startswith("/*", self.pos + after):
            self.pos += after
            self.ignore()
            return self.lex_comment
        self.emit(I_LEFT_DELIM)
        self.pos += after
        self.ignore()
        self.paren_depth = 0
        return self.lex_inside_action

    def lex_comment(self) -> Callable[[], Any] | None:
        self.pos += 2
        i = self.input.find("*/", self.pos)
        if i < 0:
            return self.errorf("unclosed comment")
        self.pos = i + 2
        delim, trim = self.at_right_delim()
        if not delim:
            return self.errorf("comment ends before closing delimiter")
        if trim:
            self.pos += 2
        self.pos += len(_RIGHT)
        if trim:
            rest = self.input[self.pos:]
            self.pos += len(rest) - len(rest.lstrip(_SPACE))
        self.ignore()
        return self.lex_text

    def lex_right_delim(self) -> Callable[[], Any] | None:
        trim = _has_right_trim(self.input, self.pos)
        if trim:
            self.pos += 2
            self.ignore()
        self.pos += len(_RIGHT)
        self.emit(I_RIGHT_DELIM)
        if trim:
            rest = self.input[self.pos:]
            self.pos += len(rest) - len(rest.lstrip(_SPACE))
            self.ignore()
        return self.lex_text

    def lex_inside_action(self) -> Callable[[], Any] | None:
        delim, _ = self.at_right_delim()
        if delim:
            if self.paren_depth == 0:
                return self.lex_right_delim
            return self.errorf("unclosed left paren")
        ch = self.next()
        if ch == "":
            return self.errorf("unclosed action")
        if ch in _SPACE:
            self.backup()
            return self.lex_space
        if ch == "=":
            self.emit(I_ASSIGN)
        elif ch == ":":
            if self.next() != "=":
                return self.errorf("expected :=")
            self.emit(I_DECLARE)
        elif ch == "|":
            self.emit(I_PIPE)
        elif ch == '"':
            return self.lex_quote
        elif ch == "`":
            return self.lex_raw_quote
        elif ch == "$":
            return self.lex_variable
        elif ch == "'":
            return self.lex_char
        elif ch == "." and self.pos < len(self.input) and not "0" <= self.input[self.pos] <= "9":
            return self.lex_field
        elif ch in ".+-" or "0" <= ch <= "9":
            self.backup()
            return self.lex_number
        elif _is_alnum(ch):
            self.backup()
            return self.lex_identifier
        elif ch == "(":
            self.emit(I_LEFT_PAREN)
            self.paren_depth += 1
        elif ch == ")":
            self.emit(I_RIGHT_PAREN)
            self.paren_depth -= 1
            if self.paren_depth < 0:
                return self.errorf(f"unexpected right paren {format_unicode(ord(ch))}")
        elif ord(ch) <= 0x7F and ch.isprintable():
            self.emit(I_CHAR)
        else:
            return self.errorf(f"unrecognized character in action: {format_unicode(ord(ch))}")
        return self.lex_inside_action

    def lex_space(self) -> Callable[[], Any] | None:
        n = 0
        while self.peek() != "" and self.peek() in _SPACE:
            self.pos += 1
            n += 1
        # A space followed by "-}}" belongs to the trim marker of the closing delimiter.
        if _has_right_trim(self.input, self.pos - 1) and self.input.startswith(_RIGHT, self.pos + 1):
            self.backup()
            if n == 1:
                return self.lex_right_delim
        self.emit(I_SPACE)
        return self.lex_inside_action

    def lex_identifier(self) -> Callable[[], Any] | None:
        while True:
            ch = self.next()
            if ch != "" and _is_alnum(ch):
                continue
            if ch != "":
                self.backup()
            else:
                self.pos = len(self.input)
            word = self.input[self.start:self.pos]
            if not self.at_terminator():
                return self.errorf(f"bad character {format_unicode(ord(self.peek()))}")
            kw = _KEYWORDS.get(word, 0)
            if kw > I_KEYWORD:
                self.emit(kw)
            elif word[0] == ".":
                self.emit(I_FIELD)
            elif word in ("true", "false"):
                self.emit(I_BOOL)
            else:
                self.emit(I_IDENTIFIER)
            return self.lex_inside_action

    def lex_field(self) -> Callable[[], Any] | None:
        return self._lex_field_or_variable(I_FIELD)

    def lex_variable(self) -> Callable[[], Any] | None:
        if self.at_terminator():
            self.emit(I_VARIABLE)
            return self.lex_inside_action
        return self._lex_field_or_variable(I_VARIABLE)

    def _lex_field_or_variable(self, typ: int) -> Callable[[], Any] | None:
        if self.at_terminator():
            self.emit(I_VARIABLE if typ == I_VARIABLE else I_DOT)
            return self.lex_inside_action
        while self.pos < len(self.input) and _is_alnum(self.input[self.pos]):
            self.pos += 1
        if not self.at_terminator():
            return self.errorf(f"bad character {format_unicode(ord(self.peek()))}")
        self.emit(typ)
        return self.lex_inside_action

    def _lex_quoted(self, close: str, typ: int, msg: str) -> Callable[[], Any] | None:
        while True:
            ch = self.next()
            if ch == "\\":
                ch = self.next()
                if ch not in ("", "\n"):
                    continue
                return self.errorf(msg)
            if ch in ("", "\n"):
                return self.errorf(msg)
            if ch == close:
                break
        self.emit(typ)
        return self.lex_inside_action

    def lex_char(self) -> Callable[[], Any] | None:
        return self._lex_quoted("'", I_CHAR_CONSTANT, "unterminated character constant")

    def lex_quote(self) -> Callable[[], Any] | None:
        return self._lex_quoted('"', I_STRING, "unterminated quoted string")

    def lex_raw_quote(self) -> Callable[[], Any] | None:
        end = self.input.find("`", self.pos)
        if end < 0:
            return self.errorf("unterminated raw quoted string")
        self.pos = end + 1
        self.emit(I_RAW_STRING)
        return self.lex_inside_action

    def lex_number(self) -> Callable[[], Any] | None:
        if not self.scan_number():
            return self.errorf(f"bad number syntax: {quote(self.input[self.start:self.pos])}")
        if self.peek() in ("+", "-") and self.peek() != "":
            if not self.scan_number() or self.input[self.pos - 1] != "i":
                return self.errorf(f"bad number syntax: {quote(self.input[self.start:self.pos])}")
            self.emit(I_COMPLEX)
        else:
            self.emit(I_NUMBER)
        return self.lex_inside_action

    def _accept(self, valid: str) -> bool:
        ch = self.peek()
        if ch != "" and ch in valid:
            self.pos += 1
            return True
        return False

    def _accept_run(self, valid: str) -> None:
        while self._accept(valid):
            pass

    def scan_number(self) -> bool:
        self._accept("+-")
        digits = "0123456789_"
        if self._accept("0"):
            if self._accept("xX"):
                digits = "0123456789abcdefABCDEF_"
            elif self._accept("oO"):
                digits = "01234567_"
            elif self._accept("bB"):
                digits = "01_"
        self._accept_run(digits)
        if self._accept("."):
            self._accept_run(digits)
        if len(digits) == 11 and self._accept("eE"):
            self._accept("+-")
            self._accept_run("0123456789_")
        if len(digits) == 23 and self._accept("pP"):
            self._accept("+-")
            self._accept_run("0123456789_")
        self._accept("i")
        if self.peek() != "" and _is_alnum(self.peek()):
            self.pos += 1
            return False
        return True
