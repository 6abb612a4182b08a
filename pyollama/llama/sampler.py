"""Samplers: hand-built llama_sampler chains and llama.cpp's common sampler.

`SamplerChain` is the low-level chain (add_top_k, add_temp, add_grammar, ...).
`Sampler` is what the engine uses: the same sampler llama-server uses, built
from one settings object, with the grammar applied lazily or strictly.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from pyollama import _native

SamplerChain = _native.SamplerChain
Sampler = _native.CommonSampler
sample_many = _native.sample_many

DEFAULT_SEED = 0xFFFFFFFF  # LLAMA_DEFAULT_SEED: a random seed


@dataclass(frozen=True)
class SamplerSettings:
    seed: int = DEFAULT_SEED
    temperature: float = 0.8
    top_k: int = 40
    top_p: float = 0.9
    min_p: float = 0.0
    typical_p: float = 1.0
    repeat_last_n: int = 64
    repeat_penalty: float = 1.0
    presence_penalty: float = 0.0
    frequency_penalty: float = 0.0
    mirostat: int = 0
    mirostat_tau: float = 5.0
    mirostat_eta: float = 0.1
    grammar: str = ""
    grammar_kind: str = "user"
    grammar_lazy: bool = False
    grammar_triggers: list[dict[str, Any]] = field(default_factory=list)
    preserved_tokens: list[int] = field(default_factory=list)
    generation_prompt: str = ""

    def build(self, model: _native.Model) -> _native.CommonSampler:
        return _native.CommonSampler(
            model,
            seed=self.seed & 0xFFFFFFFF,
            temperature=self.temperature,
            top_k=self.top_k,
            top_p=self.top_p,
            min_p=self.min_p,
            typical_p=self.typical_p,
            repeat_last_n=self.repeat_last_n,
            repeat_penalty=self.repeat_penalty,
            presence_penalty=self.presence_penalty,
            frequency_penalty=self.frequency_penalty,
            mirostat=self.mirostat,
            mirostat_tau=self.mirostat_tau,
            mirostat_eta=self.mirostat_eta,
            grammar=self.grammar,
            grammar_kind=self.grammar_kind,
            grammar_lazy=self.grammar_lazy,
            grammar_triggers=self.grammar_triggers,
            preserved_tokens=self.preserved_tokens,
            generation_prompt=self.generation_prompt,
        )


def json_schema_to_grammar(schema: dict[str, Any] | str) -> str:
    """GBNF for a JSON schema through llama.cpp's common converter; ValueError if unsupported."""
    text = schema if isinstance(schema, str) else json.dumps(schema)
    return _native.json_schema_to_grammar(text)


# GBNF for any JSON value (format: "json"), the same grammar as llama.cpp's grammars/json.gbnf.
JSON_GRAMMAR = r"""
root   ::= object
value  ::= object | array | string | number | ("true" | "false" | "null") ws
object ::= "{" ws ( string ":" ws value ("," ws string ":" ws value)* )? "}" ws
array  ::= "[" ws ( value ("," ws value)* )? "]" ws
string ::= "\"" ( [^"\\\x7F\x00-\x1F] | "\\" (["\\bfnrt] | "u" [0-9a-fA-F]{4}) )* "\"" ws
number ::= ("-"? ([0-9] | [1-9] [0-9]{0,15})) ("." [0-9]+)? ([eE] [-+]? [0-9] [1-9]{0,15})? ws
ws ::= | " " | "\n" [ \t]{0,20}
"""
