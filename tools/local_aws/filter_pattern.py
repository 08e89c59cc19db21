# -*- coding: utf-8 -*-
# Copyright: canarykeys.aws contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""CloudWatch Logs filter patterns, evaluated as CloudWatch Logs does (moto stores them, never evaluates).

    FilterPattern('{ $.userIdentity.type = "IAMUser" }').matches(message) -> bool

Supported (the syntax of AWS's "Filter pattern syntax for metric filters, subscription filters, filter
log events" page):

- the empty pattern: every event;
- JSON patterns ``{ SELECTOR OP VALUE }``: selectors ``$.a.b``, ``$.a[0].b``, ``$.a.*`` (any child);
  ``=`` / ``!=`` with a string (quoted, or unquoted without spaces; ``*`` matches any characters,
  so ``"Get*"`` is a prefix match); ``=``, ``!=``, ``<``, ``<=``, ``>``, ``>=`` with a number;
  ``IS TRUE``, ``IS FALSE``, ``IS NULL``, ``NOT EXISTS`` (and ``EXISTS``); ``&&``, ``||`` and
  parentheses, ``&&`` binding tighter than ``||``;
- term patterns on unstructured text: ``ERROR``, ``"exact phrase"``, ``?A ?B`` (either), ``-X`` (not).

Not supported, and refused with UnsupportedPattern rather than guessed: space-delimited patterns
(``[ip, user, ...]``) and regular expressions (``%...%``).  A condition on a property that an event
lacks is false, ``!=`` included: CloudWatch Logs matches only events that have the property.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass


class UnsupportedPattern(ValueError):
    """A pattern this evaluator does not model; the delivery reports it instead of guessing."""


class PatternSyntaxError(ValueError):
    """A pattern CloudWatch Logs would refuse (PutSubscriptionFilter: InvalidParameterException)."""


_MISSING = object()
_TOKEN_RE = re.compile(r"""
    (?P<space>\s+)
  | (?P<op>&&|\|\||!=|<=|>=|=|<|>|\(|\)|\{|\})
  | (?P<string>"(?:[^"\\]|\\.)*")
  | (?P<regex>%[^%]*%)
  | (?P<selector>\$(?:\.(?:[A-Za-z0-9_\-@:*]+|"[^"]*")|\[\d+\]|\[\*\])*)
  | (?P<word>[^\s(){}&|=!<>"]+)
""", re.VERBOSE)
_NUMBER_RE = re.compile(r"^-?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?$")
_KEYWORDS = {"IS", "NOT", "EXISTS", "TRUE", "FALSE", "NULL"}


@dataclass(frozen=True)
class _Token:
    kind: str
    text: str


def _tokens(text: str) -> list[_Token]:
    tokens, position = [], 0
    while position < len(text):
        match = _TOKEN_RE.match(text, position)
        if not match:
            raise PatternSyntaxError(f"unexpected character {text[position]!r} at {position} in {text!r}")
        position = match.end()
        if match.lastgroup != "space":
            tokens.append(_Token(match.lastgroup, match.group()))
    return tokens


def _selector_path(text: str) -> tuple:
    """``$.a.b[0].*`` -> ("a", "b", 0, "*")."""
    path = []
    for part in re.finditer(r'\.(?:"([^"]*)"|([^.\[]+))|\[(\d+|\*)\]', text[1:]):
        quoted, plain, index = part.groups()
        if index is not None:
            path.append("*" if index == "*" else int(index))
        else:
            path.append(quoted if quoted is not None else plain)
    return tuple(path)


def _resolve(value, path: tuple) -> list:
    """Every value the selector reaches (``*`` fans out); empty when the property does not exist."""
    if not path:
        return [value]
    head, rest = path[0], path[1:]
    if head == "*":
        children = value.values() if isinstance(value, dict) else (value if isinstance(value, list) else ())
        return [found for child in children for found in _resolve(child, rest)]
    if isinstance(head, int):
        return _resolve(value[head], rest) if isinstance(value, list) and head < len(value) else []
    return _resolve(value[head], rest) if isinstance(value, dict) and head in value else []


def _wildcard(text: str) -> re.Pattern:
    return re.compile("^" + ".*".join(re.escape(part) for part in text.split("*")) + "$", re.DOTALL)


def _unquote(text: str) -> str:
    return json.loads(text) if text.startswith('"') else text


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


class _Comparison:
    def __init__(self, path: tuple, operator: str, operand):
        self.path = path
        self.operator = operator
        self.operand = operand
        self.pattern = _wildcard(operand) if isinstance(operand, str) else None

    def _holds(self, value) -> bool:
        operator, operand = self.operator, self.operand
        if isinstance(operand, str):
            if not isinstance(value, str):
                return False
            equal = bool(self.pattern.match(value))
            return equal if operator == "=" else not equal
        if not _is_number(value):
            return False
        return {"=": value == operand, "!=": value != operand, "<": value < operand, "<=": value <= operand,
                ">": value > operand, ">=": value >= operand}[operator]

    def evaluate(self, document) -> bool:
        return any(self._holds(value) for value in _resolve(document, self.path))


class _Test:
    def __init__(self, path: tuple, test: str):
        self.path = path
        self.test = test

    def evaluate(self, document) -> bool:
        values = _resolve(document, self.path)
        if self.test == "NOT EXISTS":
            return not values
        if self.test == "EXISTS":
            return bool(values)
        expected = {"TRUE": True, "FALSE": False, "NULL": None}[self.test]
        return any(value is expected for value in values)


class _Boolean:
    def __init__(self, operator: str, operands: list):
        self.operator = operator
        self.operands = operands

    def evaluate(self, document) -> bool:
        results = (operand.evaluate(document) for operand in self.operands)
        return all(results) if self.operator == "&&" else any(results)


class _JsonParser:
    def __init__(self, text: str):
        self.text = text
        self.tokens = _tokens(text)
        self.position = 0

    def _peek(self) -> _Token | None:
        return self.tokens[self.position] if self.position < len(self.tokens) else None

    def _take(self, text: str | None = None, kind: str | None = None) -> _Token:
        token = self._peek()
        if token is None or (text is not None and token.text.upper() != text) or (kind is not None and token.kind != kind):
            wanted = text or kind
            found = token.text if token else "the end"
            raise PatternSyntaxError(f"expected {wanted} but found {found!r} in {self.text!r}")
        self.position += 1
        return token

    def parse(self):
        self._take("{")
        expression = self._or()
        self._take("}")
        if self._peek() is not None:
            raise PatternSyntaxError(f"unexpected {self._peek().text!r} after the closing brace in {self.text!r}")
        return expression

    def _or(self):
        operands = [self._and()]
        while self._peek() is not None and self._peek().text == "||":
            self._take("||")
            operands.append(self._and())
        return operands[0] if len(operands) == 1 else _Boolean("||", operands)

    def _and(self):
        operands = [self._unary()]
        while self._peek() is not None and self._peek().text == "&&":
            self._take("&&")
            operands.append(self._unary())
        return operands[0] if len(operands) == 1 else _Boolean("&&", operands)

    def _unary(self):
        token = self._peek()
        if token is not None and token.text == "(":
            self._take("(")
            expression = self._or()
            self._take(")")
            return expression
        return self._condition()

    def _condition(self):
        path = _selector_path(self._take(kind="selector").text)
        token = self._peek()
        if token is None:
            raise PatternSyntaxError(f"a condition ends too early in {self.text!r}")
        upper = token.text.upper()
        if upper == "IS":
            self._take("IS")
            value = self._take().text.upper()
            if value not in ("TRUE", "FALSE", "NULL"):
                raise PatternSyntaxError(f"IS takes TRUE, FALSE or NULL, not {value!r}, in {self.text!r}")
            return _Test(path, value)
        if upper == "NOT":
            self._take("NOT")
            self._take("EXISTS")
            return _Test(path, "NOT EXISTS")
        if upper == "EXISTS":
            self._take("EXISTS")
            return _Test(path, "EXISTS")
        operator = self._take(kind="op").text
        if operator not in ("=", "!=", "<", "<=", ">", ">="):
            raise PatternSyntaxError(f"expected a comparison operator, found {operator!r} in {self.text!r}")
        value = self._take()
        if value.kind == "regex":
            raise UnsupportedPattern(f"regular expressions are not modelled: {value.text!r} in {self.text!r}")
        if value.kind == "word" and _NUMBER_RE.match(value.text):
            return _Comparison(path, operator, float(value.text) if any(c in value.text for c in ".eE") else int(value.text))
        if value.kind not in ("string", "word") or value.text.upper() in _KEYWORDS:
            raise PatternSyntaxError(f"expected a value after {operator!r}, found {value.text!r} in {self.text!r}")
        if operator not in ("=", "!="):
            raise PatternSyntaxError(f"{operator!r} compares numbers only, not {value.text!r}, in {self.text!r}")
        return _Comparison(path, operator, _unquote(value.text))


class _TermPattern:
    """Unstructured-text terms: all plain terms, at least one ``?`` term, no ``-`` term."""

    def __init__(self, text: str):
        self.required, self.any_of, self.excluded = [], [], []
        for match in re.finditer(r'([?-]?)("(?:[^"\\]|\\.)*"|\S+)', text):
            prefix, term = match.groups()
            term = _unquote(term)
            {"": self.required, "?": self.any_of, "-": self.excluded}[prefix].append(term)

    def evaluate_text(self, message: str) -> bool:
        return (all(term in message for term in self.required)
                and (not self.any_of or any(term in message for term in self.any_of))
                and not any(term in message for term in self.excluded))


class FilterPattern:
    """A compiled CloudWatch Logs filter pattern."""

    def __init__(self, text: str):
        self.text = text or ""
        stripped = self.text.strip()
        self._json = None
        self._terms = None
        if stripped.startswith("{"):
            self._json = _JsonParser(stripped).parse()
        elif stripped.startswith("["):
            raise UnsupportedPattern(f"space-delimited patterns are not modelled: {text!r}")
        elif stripped.startswith("%"):
            raise UnsupportedPattern(f"regular expressions are not modelled: {text!r}")
        elif stripped:
            self._terms = _TermPattern(stripped)

    def matches(self, message: str) -> bool:
        if self._json is not None:
            try:
                document = json.loads(message)
            except ValueError:
                return False
            return self._json.evaluate(document)
        if self._terms is not None:
            return self._terms.evaluate_text(message)
        return True


def matches(pattern: str, message: str) -> bool:
    return FilterPattern(pattern).matches(message)
