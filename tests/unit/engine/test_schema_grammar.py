"""Schema -> grammar checks (format schemas and tool calls), without a server.

The bounded-number rules are plain regular expressions in GBNF, so they are checked against
Python's `re` over many numbers; every grammar is also parsed by llama.cpp (a sampler is built
on SmolLM2's vocabulary)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from pyollama.engine.schema_grammar import SchemaError, number_rule, schema_grammar
from pyollama.engine.tool_grammar import tool_call_grammar
from pyollama.errors import BadRequestError
from pyollama.llama import Model
from pyollama.llama.sampler import SamplerSettings

NUMBERS = [
    "0",
    "1",
    "-1",
    "0.5",
    "-0.5",
    "10",
    "10.0",
    "10.5",
    "9.99",
    "-3",
    "-3.0",
    "-3.5",
    "3",
    "3.0",
    "3.01",
    "-10",
    "-9.5",
    "-10.0",
    "5",
    "4.999",
    "-5",
    "-5.0",
    "100",
    "-100",
    "2.5",
    "-2",
    "-1.5",
    "0.0",
    "99.999",
    "-99.5",
    "-100.01",
    "120",
    "12345",
    "-0.001",
]


def _as_regex(rule: str) -> re.Pattern[str]:
    """The GBNF subset number_rule writes (literals, classes, groups, ?, {m,n}, |) as a regex."""
    pattern = re.sub(r'"([^"]*)"', lambda m: re.escape(m.group(1)), rule).replace(" ", "")
    return re.compile(f"^(?:{pattern})$")


@pytest.fixture(scope="module")
def vocab(smollm2_path: Path) -> Model:
    return Model(smollm2_path, vocab_only=True)


def _parses(vocab: Model, grammar: str, **settings: Any) -> None:
    SamplerSettings(grammar=grammar, grammar_kind="output_format", **settings).build(vocab)


@pytest.mark.parametrize(
    "bounds",
    [
        (0, False, 10, False),
        (0, True, 10, True),
        (-5, False, 5, True),
        (None, False, -3, False),
        (-10, True, None, False),
        (3, False, 3, False),
        (-3, False, -3, False),
        (-2, True, -1, True),
        (1, False, None, False),
        (None, False, 0, True),
        (-100, True, 100, True),
    ],
)
def test_bounded_number_rule_accepts_exactly_the_numbers_in_range(
    bounds: tuple[Any, bool, Any, bool],
) -> None:
    lo, lo_excl, hi, hi_excl = bounds
    rule = _as_regex(number_rule(lo, lo_excl, hi, hi_excl))
    for text in NUMBERS:
        value = float(text)
        inside = (lo is None or (value > lo if lo_excl else value >= lo)) and (
            hi is None or (value < hi if hi_excl else value <= hi)
        )
        assert bool(rule.match(text)) == inside, (bounds, text)


def test_empty_range_has_no_rule() -> None:
    assert number_rule(5, False, 4, False) == ""
    assert number_rule(3, True, 3, False) == ""


def test_schema_grammar_splices_bounded_numbers_and_llama_cpp_parses_it(vocab: Model) -> None:
    schema = {
        "type": "object",
        "properties": {
            "score": {"type": "number", "minimum": 0, "maximum": 10},
            "items": {"type": "array", "items": {"type": "number", "exclusiveMinimum": -1}},
        },
        "required": ["score"],
    }
    grammar = schema_grammar(schema)
    assert "pyollama-number-0 ::= " in grammar and "pyollama-number-1 ::= " in grammar
    assert "__pyollama_number_" not in grammar
    _parses(vocab, grammar)


@pytest.mark.parametrize(
    ("schema", "where"),
    [
        ({"type": "integer", "multipleOf": 2}, "'multipleOf' at the schema root"),
        ({"type": "object", "properties": {"a": {"not": {"type": "null"}}}}, "'not' at /properties/a"),
        ({"$defs": {"d": {"type": "object", "minProperties": 1}}, "$ref": "#/$defs/d"}, "at /$defs/d"),
        ({"type": "array", "items": {"type": "string", "pattern": "x+"}}, "pattern 'x+' at /items"),
        ({"anyOf": [{"type": "string"}, {"type": "array", "contains": {"type": "string"}}]}, "at /anyOf/1"),
        ({"type": ["number", "null"], "minimum": 1}, "type list"),
        ({"type": "number", "minimum": 0.25}, "not a whole number"),
        ({"type": "number", "minimum": 5, "maximum": 1}, "no number satisfies"),
    ],
)
def test_schema_grammar_refuses_what_it_cannot_enforce(schema: dict[str, Any], where: str) -> None:
    with pytest.raises(SchemaError) as raised:
        schema_grammar(schema)
    assert raised.value.status == 400
    assert raised.value.message.startswith("invalid JSON schema in format: ")
    assert where in raised.value.message


def test_property_named_like_a_keyword_is_fine(vocab: Model) -> None:
    schema = {"type": "object", "properties": {"not": {"type": "string"}, "multipleOf": {"type": "integer"}}}
    _parses(vocab, schema_grammar(schema))


def test_tool_call_grammar_is_lazy_and_parses(vocab: Model) -> None:
    tools = [
        {
            "type": "function",
            "function": {
                "name": "get_weather",
                "parameters": {
                    "type": "object",
                    "properties": {"city": {"type": "string"}, "days": {"type": "number", "maximum": 7}},
                    "required": ["city"],
                },
            },
        },
        {
            "type": "function",
            "function": {"name": "root", "parameters": {"type": "object", "properties": {}}},
        },
        {"type": "function", "function": {"description": "no name: skipped"}},
    ]
    constrained = tool_call_grammar(tools)
    assert constrained is not None
    assert {t["value"] for t in constrained.triggers} == {"<tool_call>", '{"name"'}
    assert constrained.grammar.count("root ::= ") == 1
    assert '"\\"root\\""' in constrained.grammar  # the tool named "root" is a literal, left alone
    _parses(vocab, constrained.grammar, grammar_lazy=True, grammar_triggers=constrained.triggers)


def test_tool_call_grammar_ignores_keywords_it_cannot_enforce() -> None:
    tool = {
        "type": "function",
        "function": {
            "name": "f",
            "parameters": {"type": "object", "properties": {"n": {"type": "integer", "multipleOf": 3}}},
        },
    }
    assert tool_call_grammar([tool]) is not None
    assert tool_call_grammar([{"type": "function"}]) is None


def test_tool_call_grammar_with_invalid_pattern_is_400() -> None:
    tool = {
        "type": "function",
        "function": {
            "name": "f",
            "parameters": {"type": "object", "properties": {"s": {"type": "string", "pattern": "^(a$"}}},
        },
    }
    with pytest.raises(BadRequestError, match="invalid tool parameters schema"):
        tool_call_grammar([tool])
