"""`format: <JSON schema>` -> GBNF, refusing what the grammar could not enforce.

llama.cpp's converter (`json_schema_to_grammar`) handles objects, arrays, enums, consts,
required and additional properties, string lengths and patterns, item counts and integer
bounds, but silently ignores some keywords: bounds on `number`s and every keyword listed in
`UNENFORCEABLE`. Ignoring them would let replies through that do not validate, so:

- `number`s with whole-number bounds (`minimum`, `maximum`, `exclusiveMinimum`,
  `exclusiveMaximum`) get a grammar of their own: plain decimals (no exponent) in range,
  spliced into the converter's output in place of a placeholder constant;
- anything else the converter cannot enforce (those keywords, and `pattern`s it cannot turn
  into a grammar, which it would replace by "any string") is a 400 naming it and where it is.

Tool parameter schemas go through the same rewrite with `strict=False`: bounded numbers are
enforced, the rest is left to the converter (Ollama never refuses a tool for its schema).
"""

from __future__ import annotations

import functools
import json
import math
import re
from collections.abc import Mapping
from typing import Any

from pyollama.errors import BadRequestError
from pyollama.llama.sampler import json_schema_to_grammar

# Keywords the converter ignores (or only half-enforces) when they constrain something.
UNENFORCEABLE = (
    "multipleOf",
    "not",
    "if",
    "then",
    "else",
    "contains",
    "minContains",
    "maxContains",
    "minProperties",
    "maxProperties",
    "patternProperties",
    "propertyNames",
    "dependentRequired",
    "dependentSchemas",
    "dependencies",
    "unevaluatedProperties",
    "unevaluatedItems",
)
_BOUNDS = ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum")
# Subschemas by keyword: a map of schemas, a list of schemas, or one schema.
_SCHEMA_MAPS = ("properties", "$defs", "definitions", "patternProperties", "dependentSchemas")
_SCHEMA_LISTS = ("anyOf", "oneOf", "allOf", "prefixItems")
_SCHEMA_ONE = (
    "additionalProperties",
    "items",
    "not",
    "if",
    "then",
    "else",
    "contains",
    "propertyNames",
    "unevaluatedProperties",
    "unevaluatedItems",
    "additionalItems",
)

_FRACTION = '("." [0-9]{1,15})?'
_NONZERO_FRACTION = '"." "0"{0,14} [1-9] [0-9]{0,14}'
_ZERO_FRACTION = '("." "0"{1,15})?'


class SchemaError(BadRequestError):
    """A `format` schema that grammar-constrained sampling cannot enforce (400)."""

    def __init__(self, reason: str) -> None:
        super().__init__(f"invalid JSON schema in format: {reason}")
        self.reason = reason


def _where(path: str) -> str:
    return path or "the schema root"


def _number(value: Any, keyword: str, path: str) -> int | None:
    """A bound as an int (None when absent); fractional bounds cannot be enforced."""
    if value is None or isinstance(value, bool):
        return None
    if not isinstance(value, (int, float)) or not math.isfinite(value):
        raise SchemaError(f"{keyword} at {_where(path)} must be a finite number")
    if float(value) != math.floor(value):
        raise SchemaError(
            f"{keyword} {value} at {_where(path)} is not a whole number; "
            "only whole-number bounds on numbers can be enforced"
        )
    return int(value)


def _bounds(schema: Mapping[str, Any], path: str) -> tuple[int | None, bool, int | None, bool]:
    """(lower, lower exclusive, upper, upper exclusive), draft 4 boolean exclusives included."""
    lo = _number(schema.get("minimum"), "minimum", path)
    hi = _number(schema.get("maximum"), "maximum", path)
    lo_excl = hi_excl = False
    ex_lo, ex_hi = schema.get("exclusiveMinimum"), schema.get("exclusiveMaximum")
    if isinstance(ex_lo, bool):
        lo_excl = ex_lo and lo is not None
    elif ex_lo is not None:
        value = _number(ex_lo, "exclusiveMinimum", path)
        if value is not None and (lo is None or value >= lo):
            lo, lo_excl = value, True
    if isinstance(ex_hi, bool):
        hi_excl = ex_hi and hi is not None
    elif ex_hi is not None:
        value = _number(ex_hi, "exclusiveMaximum", path)
        if value is not None and (hi is None or value <= hi):
            hi, hi_excl = value, True
    return lo, lo_excl, hi, hi_excl


def _int_range(lo: int, hi: int | None) -> str:
    """GBNF for the integers lo..hi (hi None: unbounded), lo >= 0, from llama.cpp's converter."""
    schema: dict[str, Any] = {"type": "integer", "minimum": lo}
    if hi is not None:
        schema["maximum"] = hi
    for line in json_schema_to_grammar(schema).splitlines():
        if line.startswith("root ::= "):
            return "(" + line[len("root ::= ") :] + ")"
    raise SchemaError("integer range grammar not found")  # converter changed


def _unsigned(lo: int, lo_excl: bool, hi: int | None, hi_excl: bool) -> list[str]:
    """Alternatives for a decimal m >= 0 with lo <(=) m <(=) hi, as `k` or `k.fraction`."""
    out: list[str] = []
    k_lo = lo + 1 if lo_excl else lo
    k_hi = None if hi is None else hi - 1
    if k_hi is None or k_lo <= k_hi:
        out.append(f"{_int_range(k_lo, k_hi)} {_FRACTION}")
    if lo_excl and (hi is None or lo < hi):
        out.append(f'"{lo}" {_NONZERO_FRACTION}')
    if hi is not None and not hi_excl and (hi > lo or (hi == lo and not lo_excl)):
        out.append(f'"{hi}" {_ZERO_FRACTION}')
    return out


def number_rule(lo: int | None, lo_excl: bool, hi: int | None, hi_excl: bool) -> str:
    """The GBNF body for a JSON number within the bounds ('' when no number fits)."""
    alternatives: list[str] = []
    # x >= 0
    if hi is None or hi > 0 or (hi == 0 and not hi_excl):
        if lo is None or lo < 0:
            alternatives += _unsigned(0, False, hi, hi_excl)
        else:
            alternatives += _unsigned(lo, lo_excl, hi, hi_excl)
    # x < 0, written "-m" with m = -x > 0
    if lo is None or lo < 0:
        m_lo, m_lo_excl = (0, True) if hi is None or hi >= 0 else (-hi, hi_excl)
        m_hi, m_hi_excl = (None, False) if lo is None else (-lo, lo_excl)
        alternatives += [f'"-" {alt}' for alt in _unsigned(m_lo, m_lo_excl, m_hi, m_hi_excl)]
    return " | ".join(f"( {alt} )" for alt in alternatives)


@functools.lru_cache(maxsize=1)
def _any_string_fallback() -> str:
    """What the converter writes for a pattern it cannot convert: the same "any string" grammar
    whatever the pattern (an unanchored one is always refused). It logs a warning, once."""
    return json_schema_to_grammar(json.dumps({"type": "string", "pattern": "unanchored"}))


@functools.lru_cache(maxsize=256)
def _pattern_supported(pattern: str) -> bool:
    """Whether the converter turns `pattern` into a grammar rather than falling back to any string."""
    try:
        constrained = json_schema_to_grammar(json.dumps({"type": "string", "pattern": pattern}))
    except ValueError:
        return True  # an invalid pattern: the converter's own error names it
    return constrained != _any_string_fallback()


def _check_unenforceable(schema: Mapping[str, Any], path: str) -> None:
    for keyword in UNENFORCEABLE:
        if keyword in schema:
            raise SchemaError(
                f"{keyword!r} at {_where(path)} cannot be enforced by grammar-constrained sampling"
            )
    if schema.get("uniqueItems") is True:
        raise SchemaError(
            f"'uniqueItems' at {_where(path)} cannot be enforced by grammar-constrained sampling"
        )
    pattern = schema.get("pattern")
    if isinstance(pattern, str) and not _pattern_supported(pattern):
        raise SchemaError(
            f"pattern {pattern!r} at {_where(path)} cannot be turned into a "
            "grammar (it must be anchored with ^ and $ and use no lookaround or backreferences)"
        )


def _rewrite(schema: Any, path: str, numbers: list[str], strict: bool) -> Any:
    """A copy of `schema` with bounded numbers replaced by placeholder consts (their rules appended
    to `numbers`); when `strict`, raises SchemaError for what cannot be enforced."""
    if isinstance(schema, bool) or not isinstance(schema, Mapping):
        return schema
    if strict:
        _check_unenforceable(schema, path)
    types = schema.get("type")
    has_bounds = any(k in schema for k in _BOUNDS)
    if has_bounds and (
        types == "number"
        or (
            types is None
            and "const" not in schema
            and "enum" not in schema
            and not any(k in schema for k in ("properties", "items"))
        )
    ):
        try:
            bounds = _bounds(schema, path)
        except SchemaError:
            if strict:
                raise
            return dict(schema)
        body = number_rule(*bounds)
        if not body:
            raise SchemaError(f"no number satisfies the bounds at {_where(path)}")
        numbers.append(body)
        return {"const": f"__pyollama_number_{len(numbers) - 1}__"}
    if strict and has_bounds and isinstance(types, list) and "number" in types:
        raise SchemaError(
            f"bounds on a number in a type list at {_where(path)} cannot be enforced; use anyOf"
        )
    out = dict(schema)
    for key in _SCHEMA_MAPS:
        value = schema.get(key)
        if isinstance(value, Mapping):
            out[key] = {k: _rewrite(v, f"{path}/{key}/{k}", numbers, strict) for k, v in value.items()}
    for key in _SCHEMA_LISTS:
        value = schema.get(key)
        if isinstance(value, list):
            out[key] = [_rewrite(v, f"{path}/{key}/{i}", numbers, strict) for i, v in enumerate(value)]
    for key in _SCHEMA_ONE:
        value = schema.get(key)
        if isinstance(value, list):
            out[key] = [_rewrite(v, f"{path}/{key}/{i}", numbers, strict) for i, v in enumerate(value)]
        elif isinstance(value, Mapping):
            out[key] = _rewrite(value, f"{path}/{key}", numbers, strict)
    return out


# GBNF string literals and character classes, which a rule rename must leave alone.
_LITERAL = re.compile(r'"(?:\\.|[^"\\])*"|\[(?:\\.|[^\]\\])*\]')
_ROOT = re.compile(r"\broot\b")


def rename_root(grammar: str, name: str) -> str:
    """`root` -> `name` in rule names and references, never inside literals: the grammar as a
    rule of a larger one."""
    out: list[str] = []
    last = 0
    for match in _LITERAL.finditer(grammar):
        out.append(_ROOT.sub(name, grammar[last : match.start()]))
        out.append(match.group(0))
        last = match.end()
    out.append(_ROOT.sub(name, grammar[last:]))
    return "".join(out)


def schema_grammar(schema: Mapping[str, Any], *, strict: bool = True) -> str:
    """GBNF whose every complete match validates against `schema`; SchemaError (400) otherwise.
    With `strict=False`, keywords the grammar cannot enforce are ignored instead."""
    numbers: list[str] = []
    rewritten = _rewrite(schema, "", numbers, strict)
    try:
        grammar = json_schema_to_grammar(json.dumps(rewritten))
    except ValueError as e:
        raise SchemaError(str(e)) from e
    rules = []
    for i, body in enumerate(numbers):
        literal = json.dumps(json.dumps(f"__pyollama_number_{i}__"))  # as the converter writes the const
        if literal not in grammar:
            raise SchemaError("a bounded number could not be placed")
        grammar = grammar.replace(literal, f"pyollama-number-{i}")
        rules.append(f"pyollama-number-{i} ::= {body}")
    return grammar.rstrip("\n") + ("\n" + "\n".join(rules) if rules else "") + "\n"


__all__ = ["UNENFORCEABLE", "SchemaError", "number_rule", "rename_root", "schema_grammar"]
