"""Random and malformed arguments to pyollama.llama raise Python exceptions; the process never dies.

Every property runs in a child process (this file run as a script) so that a segfault or an abort
in native code fails one test, with the signal and the last calls traced, instead of killing
pytest. The child:
  - limits its address space (RLIMIT_AS), so an unchecked huge allocation fails fast the way it
    would in a memory-limited container instead of swapping the test machine;
  - writes `CALL <what>(<args>)` to stderr before each native call; the test shows the tail;
  - runs hypothesis with a seed the test passes in: a fixed one by default (CI repeats itself),
    PYOLLAMA_FUZZ_SEED=random for a fresh exploration, PYOLLAMA_FUZZ_SEED=<n> to replay one.

The `CASES` at the bottom are crashes found by these properties, each reduced to one call; they
stay as regression tests.
"""

from __future__ import annotations

import faulthandler
import gc
import json
import math
import os
import random
import resource
import signal
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import seed as hypothesis_seed
from hypothesis import strategies as st
from hypothesis.stateful import Bundle, RuleBasedStateMachine, consumes, rule, run_state_machine_as_test
from tiny_model import tiny_llama_cached

# The Python exceptions the API may raise for bad input (UnicodeError is a ValueError).
ALLOWED = (ValueError, IndexError, TypeError, RuntimeError, KeyError, OverflowError)
DEFAULT_SEED = 20261123
MAX_EXAMPLES = 200
WORKER_TIMEOUT_S = 60
ADDRESS_SPACE_LIMIT = 4 << 30
TRACE_TAIL_LINES = 15

# ------------------------------------------------------------------------------------------------
# Child process side
# ------------------------------------------------------------------------------------------------

RAISED = object()  # what Tracer.call returns when the call raised an allowed exception


class Tracer:
    """Makes native calls, tracing each one to stderr first (unbuffered, so it survives a crash)."""

    def call(self, label: str, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        shown = [_short(a) for a in args] + [f"{k}={_short(v)}" for k, v in kwargs.items()]
        os.write(2, f"CALL {label}({', '.join(shown)})\n".encode(errors="replace"))
        try:
            return fn(*args, **kwargs)
        except ALLOWED:
            return RAISED


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 160 else text[:150] + f"...<{len(text)} chars>"


@dataclass
class Env:
    """What every property gets: the models (loaded once per child) and a scratch directory."""

    tiny_path: str
    smollm2_path: str
    scratch: Path
    tracer: Tracer
    tiny: Any = field(init=False)

    def __post_init__(self) -> None:
        from pyollama.llama import Model

        self.tiny = Model(self.tiny_path)


# -- strategies ---------------------------------------------------------------------------------

INT_EDGES = [
    0, 1, -1, 2, 7, 31, 32, 1023, 1024, 49151, 49152, 2**15, 2**16, 2**31 - 1, -(2**31), 2**31,
    2**32 - 1, 2**32, 2**63 - 1, -(2**63), 2**64, -(2**64), 10**30,
]  # fmt: skip
FLOAT_EDGES = [math.nan, math.inf, -math.inf, 0.0, -0.0, 1e30, -1e30, 5e-324, 1.0, 2.0]
# Pieces that trip tokenizers and parsers: special tokens, control and multi-byte characters.
TEXT_PIECES = [
    "<|im_start|>", "<|im_end|>", "<s>", "</s>", "<unk>", "<|endoftext|>", "\x00", "\n", " ", "\t",
    "a", "Z", "é", "中", "🦙", "\ufffd", "\u200b", "<0x0A>", "▁", "{", "}", "\\", '"',
]  # fmt: skip


def ints() -> st.SearchStrategy[int]:
    return st.one_of(st.integers(-4, 64), st.sampled_from(INT_EDGES), st.integers(-(2**64), 2**64))


def floats() -> st.SearchStrategy[float]:
    return st.one_of(st.floats(-2, 2), st.sampled_from(FLOAT_EDGES), st.floats())


def texts() -> st.SearchStrategy[str | bytes]:
    pieces = st.lists(st.sampled_from(TEXT_PIECES), max_size=24).map("".join)
    return st.one_of(st.text(max_size=64), pieces, st.binary(max_size=64))


def tokens(n_vocab: int) -> st.SearchStrategy[int]:
    return st.one_of(st.integers(0, n_vocab - 1), ints())


def junk() -> st.SearchStrategy[Any]:
    """Values of the wrong type for any parameter."""
    return st.one_of(
        st.none(),
        st.floats(allow_nan=True),
        st.text(max_size=6),
        st.binary(max_size=6),
        st.lists(st.integers(-3, 3), max_size=3),
        st.dictionaries(st.text(max_size=3), st.integers(-3, 3), max_size=2),
        st.builds(object),
    )


def maybe_junk(strategy: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """`strategy` five times in six, a wrong-typed value otherwise."""
    return st.integers(0, 5).flatmap(lambda r: junk() if r == 0 else strategy)


def _given(n_examples: int, seed: int) -> Callable[[Callable[[Any], None]], Callable[[], None]]:
    """@given(st.data()) with this module's settings and the child's seed."""

    def wrap(body: Callable[[Any], None]) -> Callable[[], None]:
        test = settings(
            max_examples=n_examples,
            deadline=None,
            database=None,
            suppress_health_check=list(HealthCheck),
        )(given(st.data())(body))
        return hypothesis_seed(seed)(test)  # type: ignore[no-any-return]

    return wrap


def _draw_args(data: Any, kinds: list[st.SearchStrategy[Any]]) -> list[Any]:
    args = [data.draw(maybe_junk(kind)) for kind in kinds]
    arity = data.draw(st.sampled_from(["exact"] * 8 + ["fewer", "more"]))
    if arity == "fewer" and args:
        args.pop()
    elif arity == "more":
        args.append(data.draw(junk()))
    return args


# -- properties ---------------------------------------------------------------------------------


def fuzz_model(env: Env, seed: int) -> None:
    """Vocabulary, tokenizer and metadata calls on an SPM and a BPE model."""
    from pyollama.llama import Model

    models = [env.tiny, Model(env.smollm2_path, vocab_only=True)]

    @_given(MAX_EXAMPLES, seed)
    def prop(data: Any) -> None:
        model = data.draw(st.sampled_from(models))
        tok = tokens(model.n_vocab)
        table: dict[str, list[st.SearchStrategy[Any]]] = {
            "tokenize": [texts(), st.booleans(), st.booleans()],
            "detokenize": [st.lists(tok, max_size=16), st.booleans(), st.booleans()],
            "detokenize_bytes": [st.lists(tok, max_size=16), st.booleans(), st.booleans()],
            "token_to_piece": [tok, st.booleans()],
            "token_text": [tok],
            "token_score": [tok],
            "token_attr": [tok],
            "is_eog": [tok],
            "is_control": [tok],
            "meta": [texts()],
            "chat_template": [st.one_of(st.none(), texts())],
        }
        for _ in range(data.draw(st.integers(1, 6))):
            name = data.draw(st.sampled_from(sorted(table)))
            env.tracer.call(f"Model.{name}", getattr(model, name), *_draw_args(data, table[name]))

    prop()


def fuzz_files(env: Env, seed: int) -> None:
    """Loading models and adapters, and quantizing, with bad paths, options and callbacks."""
    from pyollama.llama import LoraAdapter, Model, quantize

    def bad_progress(p: float) -> Any:
        raise ZeroDivisionError(p)

    progress = st.sampled_from(
        [None, lambda p: None, lambda p: False, lambda p: "x", lambda p: [1], bad_progress, 5]
    )
    junk_file = env.scratch / "junk.gguf"
    junk_file.write_bytes(b"GGUF\x03\x00\x00\x00" + bytes(range(256)) * 8)
    paths = st.one_of(
        st.sampled_from(
            [env.tiny_path, str(junk_file), str(env.scratch), "/nonexistent/x.gguf", "", "/dev/null"]
        ),
        st.text(max_size=20),
    )

    @_given(60, seed)
    def prop(data: Any) -> None:
        what = data.draw(st.sampled_from(["model", "lora", "quantize"]))
        if what == "model":
            kwargs = {
                "n_gpu_layers": data.draw(maybe_junk(ints())),
                "use_mmap": data.draw(st.booleans()),
                "vocab_only": data.draw(st.booleans()),
                "main_gpu": data.draw(maybe_junk(ints())),
                "progress": data.draw(progress),
            }
            env.tracer.call("Model", Model, data.draw(maybe_junk(paths)), **kwargs)
        elif what == "lora":
            env.tracer.call("LoraAdapter", LoraAdapter, env.tiny, data.draw(maybe_junk(paths)))
        else:
            kinds = st.one_of(st.sampled_from(["Q8_0", "q4_k", "F16", "Q4_K_M"]), texts())
            dst = env.scratch / "quantized.gguf"
            env.tracer.call(
                "quantize", quantize, data.draw(maybe_junk(paths)), dst, data.draw(maybe_junk(kinds))
            )
            dst.unlink(missing_ok=True)

    prop()


def fuzz_batch(env: Env, seed: int) -> None:
    """Batch construction and filling: sizes, tokens, positions, sequence ids, indices, overflow."""
    from pyollama.llama import Batch

    seq_ids = st.one_of(ints(), st.lists(ints(), max_size=5))
    table: dict[str, list[st.SearchStrategy[Any]]] = {
        "add": [ints(), ints(), seq_ids, st.booleans()],
        "add_sequence": [st.lists(ints(), max_size=20), ints(), ints(), st.booleans()],
        "set_logits": [ints(), st.booleans()],
        "token": [ints()],
        "pos": [ints()],
        "clear": [],
        "__len__": [],
    }

    @_given(MAX_EXAMPLES, seed)
    def prop(data: Any) -> None:
        batch = env.tracer.call("Batch", Batch, *_draw_args(data, [ints(), ints()]))
        if batch is RAISED:
            return
        for _ in range(data.draw(st.integers(0, 30))):
            name = data.draw(st.sampled_from(sorted(table)))
            env.tracer.call(f"Batch.{name}", getattr(batch, name), *_draw_args(data, table[name]))

    prop()


def fuzz_context(env: Env, seed: int) -> None:
    """Decoding random batches, then logits, embeddings, KV memory and state calls with random arguments."""
    from pyollama.llama import Batch, Context

    model = env.tiny
    ctx = Context(model, n_ctx=64, n_batch=32, n_ubatch=32, n_seq_max=4, n_threads=1)
    positions = st.one_of(st.integers(0, 80), st.sampled_from(INT_EDGES))
    seq_ids = st.one_of(st.integers(-2, 5), st.lists(st.integers(-2, 5), min_size=1, max_size=4))
    # Thread counts: small ones run, absurd ones must be refused (never a few hundred: they would
    # run, slowly, on a 2-core test machine).
    threads = st.one_of(st.integers(-2, 4), st.sampled_from([2**31 - 1, -(2**31), 2**31, 10**5, 10**6]))
    table: dict[str, list[st.SearchStrategy[Any]]] = {
        "logits": [ints()],
        "embeddings_ith": [ints()],
        "embeddings_seq": [ints()],
        "seq_rm": [ints(), ints(), ints()],
        "seq_cp": [ints(), ints(), ints(), ints()],
        "seq_keep": [ints()],
        "seq_add": [ints(), ints(), ints(), ints()],
        "seq_div": [ints(), ints(), ints(), ints()],
        "seq_pos_min": [ints()],
        "seq_pos_max": [ints()],
        "seq_state": [ints()],
        "set_causal_attn": [st.booleans()],
        "set_embeddings": [st.booleans()],
        "set_n_threads": [threads, threads],
        "memory_clear": [st.booleans()],
        "set_lora": [st.lists(junk(), max_size=2)],
        "abort": [],
        "perf": [],
    }

    @_given(MAX_EXAMPLES, seed)
    def prop(data: Any) -> None:
        # the same starting point for every example, so that hypothesis can replay a failing one
        ctx.set_n_threads(1)
        ctx.set_embeddings(False)
        ctx.set_causal_attn(True)
        ctx.memory_clear()
        batch = Batch(48, 4)
        # Half the batches are well-formed for our checks, so that llama_decode's own validation
        # (positions, sequence consistency) and the graph itself get random input too.
        if data.draw(st.booleans()):
            entries = st.tuples(tokens(model.n_vocab), positions, seq_ids, st.booleans())
        else:
            entries = st.tuples(
                st.integers(0, model.n_vocab - 1),
                st.integers(0, 70),
                st.lists(st.integers(0, 3), min_size=1, max_size=4, unique=True),
                st.booleans(),
            )
        for _ in range(data.draw(st.integers(0, 40))):
            env.tracer.call("Batch.add", batch.add, *data.draw(entries))
        env.tracer.call("Context.decode", ctx.decode, batch)
        for _ in range(data.draw(st.integers(0, 10))):
            name = data.draw(st.sampled_from(sorted(table)))
            env.tracer.call(f"Context.{name}", getattr(ctx, name), *_draw_args(data, table[name]))
            if name == "set_embeddings" and data.draw(st.booleans()):
                env.tracer.call("Context.decode", ctx.decode, batch)
        # A saved sequence state with bytes overwritten and cut short, restored into any sequence.
        # (Offsets are drawn as fractions: what hypothesis draws must not depend on the state's size.)
        state = env.tracer.call("Context.seq_state", ctx.seq_state, data.draw(st.integers(0, 3)))
        edits = data.draw(st.lists(st.tuples(st.floats(0, 1), st.integers(0, 255)), max_size=6))
        keep, target = data.draw(st.floats(0, 1)), data.draw(ints())
        if isinstance(state, bytes) and state:
            blob = bytearray(state)
            for where, value in edits:
                blob[min(int(where * len(blob)), len(blob) - 1)] = value
            blob = blob[: int(keep * len(blob))]
            env.tracer.call("Context.set_seq_state", ctx.set_seq_state, bytes(blob), target)
        # decode one valid token with whatever the calls above left (thread count, restored state,
        # removed or shifted cells)
        next_pos = ctx.seq_pos_max(0) + 1
        if next_pos >= ctx.n_ctx:
            ctx.memory_clear()
            next_pos = 0
        one = Batch(1)
        one.add(1, next_pos, 0, True)
        env.tracer.call("Context.decode", ctx.decode, one)

    prop()


def _decoded_context(env: Env) -> Any:
    """A tiny-model context with outputs at batch rows 0 and 2 of its last decode."""
    from pyollama.llama import Batch, Context

    ctx = Context(env.tiny, n_ctx=64, n_threads=1)
    batch = Batch(4)
    for i, token in enumerate([1, 450, 4996, 17354][:3]):
        batch.add(token % env.tiny.n_vocab, i, 0, i != 1)
    ctx.decode(batch)
    return ctx


def gbnf_texts() -> st.SearchStrategy[str]:
    pieces = [
        "root", " ::= ", "x", " ::= x", "\n", '"a"', '"ab"', "[a-z]", "[^a]", ".", "(", ")", "|", "*", "+",
        "?", "{2}", "{1,3}", "{,", "}", "<[1]>", "<[2]>", "!<[2]>", "<|im_end|>", "\\", '"', "#c", "[", "]",
        " ", "root ::= ", "-", "\\x41", "\\u00e9", "0", "99999999",
    ]  # fmt: skip
    # grammars that parse, so that sampling and accepting under a grammar get exercised too
    valid = [
        'root ::= "ab"', 'root ::= [a-z]+ "."', 'root ::= ("x" | "y")* "z"', "root ::= [^\\n]{1,4}",
        'root ::= item+\nitem ::= "-" [0-9]', 'root ::= <[2]> | "a"', 'root ::= "a"?',
    ]  # fmt: skip
    return st.one_of(
        st.sampled_from(valid),
        st.lists(st.sampled_from(pieces), max_size=20).map("".join),
        st.text(max_size=40),
    )


def fuzz_sampler_chain(env: Env, seed: int) -> None:
    """Hand-built sampler chains with random parameters, sampled and fed random tokens."""
    from pyollama.llama import Model, SamplerChain

    ctx = _decoded_context(env)
    models = [env.tiny, Model(env.tiny_path, vocab_only=True)]

    @_given(MAX_EXAMPLES, seed)
    def prop(data: Any) -> None:
        model = data.draw(st.sampled_from(models))
        bias = st.dictionaries(tokens(model.n_vocab), floats(), max_size=4)
        table: dict[str, list[st.SearchStrategy[Any]]] = {
            "add_greedy": [],
            "add_dist": [ints()],
            "add_top_k": [ints()],
            "add_top_p": [floats(), ints()],
            "add_min_p": [floats(), ints()],
            "add_typical": [floats(), ints()],
            "add_temp": [floats()],
            "add_mirostat": [st.just(model), ints(), floats(), floats(), ints()],
            "add_mirostat_v2": [ints(), floats(), floats()],
            "add_penalties": [st.just(model), ints(), floats(), floats(), floats()],
            "add_logit_bias": [st.just(model), bias],
            "add_grammar": [st.just(model), gbnf_texts(), st.sampled_from(["root", "x", ""])],
        }
        chain = SamplerChain()
        for _ in range(data.draw(st.integers(0, 5))):
            name = data.draw(st.sampled_from(sorted(table)))
            env.tracer.call(f"SamplerChain.{name}", getattr(chain, name), *_draw_args(data, table[name]))
        for _ in range(data.draw(st.integers(1, 4))):
            if data.draw(st.booleans()):
                env.tracer.call("SamplerChain.sample", chain.sample, ctx, data.draw(maybe_junk(ints())))
            else:
                env.tracer.call(
                    "SamplerChain.accept", chain.accept, data.draw(maybe_junk(tokens(model.n_vocab)))
                )
        env.tracer.call("SamplerChain.reset", chain.reset)

    prop()


def fuzz_common_sampler(env: Env, seed: int) -> None:
    """llama.cpp's common sampler (the engine's) with random settings, triggers and grammars."""
    from pyollama._native import CommonSampler, sample_many

    ctx = _decoded_context(env)
    n_vocab = env.tiny.n_vocab
    trigger = st.fixed_dictionaries(
        {"type": st.sampled_from(["token", "word", "pattern", "pattern_full", "bogus"])},
        optional={"value": texts(), "token": st.one_of(st.none(), tokens(n_vocab))},
    )
    options: dict[str, st.SearchStrategy[Any]] = {
        "seed": ints(), "temperature": floats(), "top_k": ints(), "top_p": floats(), "min_p": floats(),
        "typical_p": floats(), "repeat_last_n": ints(), "repeat_penalty": floats(),
        "presence_penalty": floats(), "frequency_penalty": floats(), "mirostat": ints(),
        "mirostat_tau": floats(), "mirostat_eta": floats(), "grammar": gbnf_texts(),
        "grammar_kind": st.sampled_from(["user", "output_format", "tool_calls", "other"]),
        "grammar_lazy": st.booleans(), "grammar_triggers": st.lists(maybe_junk(trigger), max_size=3),
        "preserved_tokens": st.lists(tokens(n_vocab), max_size=3),
        "generation_prompt": texts(), "logit_bias": st.dictionaries(tokens(n_vocab), floats(), max_size=3),
        "n_probs": ints(),
    }  # fmt: skip

    @_given(MAX_EXAMPLES, seed)
    def prop(data: Any) -> None:
        names = data.draw(st.lists(st.sampled_from(sorted(options)), max_size=8, unique=True))
        kwargs = {name: data.draw(maybe_junk(options[name])) for name in names}
        sampler = env.tracer.call("CommonSampler", CommonSampler, env.tiny, **kwargs)
        if sampler is RAISED:
            return
        for _ in range(data.draw(st.integers(1, 5))):
            step = data.draw(st.sampled_from(["sample", "accept", "sample_many", "reset"]))
            if step == "sample":
                idx = data.draw(maybe_junk(ints()))
                env.tracer.call("CommonSampler.sample", sampler.sample, ctx, idx, data.draw(st.booleans()))
            elif step == "accept":
                token = data.draw(maybe_junk(tokens(n_vocab)))
                env.tracer.call("CommonSampler.accept", sampler.accept, token, data.draw(st.booleans()))
            elif step == "sample_many":
                idxs = data.draw(st.lists(st.sampled_from([0, 2, -1, 1, 5]), min_size=1, max_size=3))
                env.tracer.call("sample_many", sample_many, ctx, [sampler] * len(idxs), idxs)
            else:
                env.tracer.call("CommonSampler.reset", sampler.reset)

    prop()


def json_schemas() -> st.SearchStrategy[Any]:
    scalars = st.one_of(
        st.none(),
        st.booleans(),
        st.integers(-(10**20), 10**20),
        st.floats(allow_nan=False),
        st.text(max_size=8),
    )
    keywords = [
        "type", "properties", "items", "prefixItems", "required", "enum", "const", "anyOf", "oneOf", "allOf",
        "$ref", "$defs", "definitions", "pattern", "format", "minLength", "maxLength", "minimum", "maximum",
        "exclusiveMinimum", "minItems", "maxItems", "additionalProperties", "not", "x",
    ]  # fmt: skip
    names = [
        "object", "array", "string", "integer", "number", "boolean", "null", "#", "#/$defs/a", "date", "uuid",
        "^[a-z]+$", "(", "date-time",
    ]  # fmt: skip
    values = st.one_of(scalars, st.sampled_from(names), st.integers(0, 10**9))

    def extend(children: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
        return st.one_of(
            st.lists(children, max_size=3),
            st.dictionaries(st.sampled_from(keywords), children, max_size=4),
            st.dictionaries(st.text(max_size=4), children, max_size=3),
        )

    return st.recursive(values, extend, max_leaves=20)


def fuzz_grammar_text(env: Env, seed: int) -> None:
    """Random GBNF and JSON-schema text, compiled and then used for a few sampling steps."""
    from pyollama.llama import SamplerChain, json_schema_to_grammar

    ctx = _decoded_context(env)

    def exercise(gbnf: Any) -> None:
        chain = SamplerChain()
        if env.tracer.call("SamplerChain.add_grammar", chain.add_grammar, env.tiny, gbnf) is RAISED:
            return
        chain.add_greedy()
        for _ in range(3):
            env.tracer.call("SamplerChain.sample", chain.sample, ctx, 0)

    @_given(MAX_EXAMPLES, seed)
    def prop(data: Any) -> None:
        if data.draw(st.booleans()):
            exercise(data.draw(maybe_junk(gbnf_texts())))
            return
        schema = data.draw(st.one_of(json_schemas(), json_schemas().map(json.dumps), texts(), junk()))
        gbnf = env.tracer.call("json_schema_to_grammar", json_schema_to_grammar, schema)
        if isinstance(gbnf, str):
            exercise(gbnf)

    prop()


def jinja_texts() -> st.SearchStrategy[str]:
    pieces = [
        "{{ ", " }}", "{% ", " %}", "{#", "#}", "for m in messages", "endfor", "if ", "endif", "else",
        "elif ", "m.content", "m['role']", "messages", "tools", "macro f()", "endmacro", "f()", "set x = ",
        "x", "1", "'a'", '"', "(", ")", "[", "]", "|", "tojson", "trim", "length", "+", "~", "-", " and ",
        " not ", " is ", "defined", "none", "loop.index", "raise_exception('e')", "namespace(a=1)",
        "add_generation_prompt", "bos_token", "\n", "range(3)", "items()", "call f()", "endcall",
        "filter upper", "endfilter", "abc",
    ]  # fmt: skip
    return st.one_of(st.lists(st.sampled_from(pieces), max_size=30).map("".join), st.text(max_size=40))


def chat_messages() -> st.SearchStrategy[str]:
    role = st.one_of(
        st.sampled_from(["user", "assistant", "system", "tool", "developer"]), st.text(max_size=5)
    )
    content = st.one_of(
        st.text(max_size=30),
        st.none(),
        st.lists(
            st.fixed_dictionaries(
                {"type": st.sampled_from(["text", "image_url", "x"]), "text": st.text(max_size=10)}
            )
        ),
        st.integers(),
    )
    arguments = st.one_of(st.text(max_size=20), st.dictionaries(st.text(max_size=3), st.integers()))
    function = st.fixed_dictionaries({"name": st.text(max_size=8), "arguments": arguments})
    call = st.fixed_dictionaries({"type": st.just("function"), "function": function})
    message = st.fixed_dictionaries(
        {"role": role},
        optional={"content": content, "tool_calls": st.lists(call, max_size=2), "name": st.text(max_size=5)},
    )
    return st.one_of(
        st.lists(message, max_size=4).map(json.dumps), st.text(max_size=40), json_schemas().map(json.dumps)
    )


def fuzz_chat(env: Env, seed: int) -> None:
    """Chat templates: random Jinja overrides, messages, tools and options; parsing random replies."""
    from pyollama.llama import ChatTemplates, Model

    model = Model(env.smollm2_path, vocab_only=True)
    tools = st.one_of(
        st.just(""), chat_messages(), st.just(json.dumps([{"type": "function", "function": {"name": "f"}}]))
    )

    @_given(MAX_EXAMPLES, seed)
    def prop(data: Any) -> None:
        override = data.draw(st.one_of(st.just(""), maybe_junk(jinja_texts())))
        templates = env.tracer.call("ChatTemplates", ChatTemplates, model, override)
        if templates is RAISED:
            return
        kwargs = {
            "tools_json": data.draw(maybe_junk(tools)),
            "add_generation_prompt": data.draw(st.booleans()),
            "json_schema": data.draw(st.one_of(st.just(""), json_schemas().map(json.dumps), texts())),
            "grammar": data.draw(st.one_of(st.just(""), gbnf_texts())),
            "tool_choice": data.draw(st.one_of(st.sampled_from(["auto", "required", "none"]), texts())),
            "parallel_tool_calls": data.draw(st.booleans()),
            "enable_thinking": data.draw(st.booleans()),
            "reasoning_format": data.draw(st.one_of(st.sampled_from(["auto", "none", "deepseek"]), texts())),
        }
        params = env.tracer.call(
            "ChatTemplates.apply", templates.apply, data.draw(maybe_junk(chat_messages())), **kwargs
        )
        if params is RAISED:
            return
        reply = data.draw(
            st.one_of(texts(), st.just('<tool_call>\n{"name": "f", "arguments": {}}\n</tool_call>'))
        )
        env.tracer.call(
            "ChatParams.parse", params.parse, reply, data.draw(st.booleans()),
            data.draw(st.sampled_from(["auto", "none", "deepseek", "bogus"])), data.draw(st.booleans()),
        )  # fmt: skip

    prop()


class _Lifetimes(RuleBasedStateMachine):
    """Objects created from one another, dropped in any order, then used: a native object keeps
    what it needs alive (a context its model, a sampler its model, parsed params their arena)."""

    env: Env

    models = Bundle("models")
    contexts = Bundle("contexts")
    batches = Bundle("batches")
    samplers = Bundle("samplers")
    params = Bundle("params")

    @rule(target=models, vocab_only=st.booleans())
    def load(self, vocab_only: bool) -> Any:
        from pyollama.llama import Model

        return self.env.tracer.call("Model", Model, self.env.tiny_path, vocab_only=vocab_only)

    @rule(target=contexts, model=models, n_seq_max=st.integers(1, 3))
    def new_context(self, model: Any, n_seq_max: int) -> Any:
        from pyollama.llama import Context

        return self.env.tracer.call("Context", Context, model, n_ctx=32, n_seq_max=n_seq_max, n_threads=1)

    @rule(target=contexts, context=contexts)
    def context_of_model_of(self, context: Any) -> Any:
        from pyollama.llama import Context

        model = context.model if context is not RAISED else RAISED
        return self.env.tracer.call("Context(ctx.model)", Context, model, n_ctx=32, n_threads=1)

    @rule(target=batches, capacity=st.integers(1, 8))
    def new_batch(self, capacity: int) -> Any:
        from pyollama.llama import Batch

        return Batch(capacity, 2)

    @rule(
        target=samplers,
        model=models,
        grammar=st.sampled_from(["", 'root ::= [a-z]+ "."']),
        greedy=st.booleans(),
    )
    def new_sampler(self, model: Any, grammar: str, greedy: bool) -> Any:
        from pyollama.llama import SamplerSettings

        settings_ = SamplerSettings(seed=1, temperature=0.0 if greedy else 0.8, grammar=grammar)
        return self.env.tracer.call("SamplerSettings.build", lambda m: settings_.build(m), model)

    @rule(target=params, model=models)
    def render_chat(self, model: Any) -> Any:
        from pyollama.llama import ChatTemplates

        templates = self.env.tracer.call(
            "ChatTemplates", ChatTemplates, model, "{% for m in messages %}{{ m.content }}{% endfor %}"
        )
        if templates is RAISED:
            return RAISED
        return self.env.tracer.call(
            "ChatTemplates.apply", templates.apply, json.dumps([{"role": "user", "content": "hi"}])
        )

    @rule(
        thing=st.one_of(
            consumes(models), consumes(contexts), consumes(batches), consumes(samplers), consumes(params)
        )
    )
    def drop(self, thing: Any) -> None:
        # the bundle held the last Python reference this machine had; collect it now
        del thing
        gc.collect()

    @rule(
        context=contexts,
        batch=batches,
        token=st.integers(0, 1100),
        pos=st.integers(0, 40),
        seq=st.integers(0, 2),
    )
    def decode(self, context: Any, batch: Any, token: int, pos: int, seq: int) -> None:
        if context is RAISED:
            return
        batch.clear()
        if self.env.tracer.call("Batch.add", batch.add, token, pos, seq, True) is RAISED:
            return
        if self.env.tracer.call("Context.decode", context.decode, batch) == 0:
            logits = context.logits(-1)
            assert logits.shape == (context.model.n_vocab,)

    @rule(sampler=samplers, context=contexts, idx=st.integers(-2, 2), token=st.integers(-1, 1100))
    def sample_and_accept(self, sampler: Any, context: Any, idx: int, token: int) -> None:
        if sampler is RAISED or context is RAISED:
            return
        self.env.tracer.call("CommonSampler.sample", sampler.sample, context, idx)
        self.env.tracer.call("CommonSampler.accept", sampler.accept, token, False)

    @rule(params_=params, text=st.text(max_size=20))
    def parse(self, params_: Any, text: str) -> None:
        if params_ is not RAISED:
            self.env.tracer.call("ChatParams.parse", params_.parse, text)


def fuzz_lifetimes(env: Env, seed: int) -> None:
    _Lifetimes.env = env
    run_state_machine_as_test(
        hypothesis_seed(seed)(_Lifetimes),
        settings=settings(
            max_examples=40,
            stateful_step_count=30,
            deadline=None,
            database=None,
            suppress_health_check=list(HealthCheck),
        ),
    )


PROPERTIES: dict[str, Callable[[Env, int], None]] = {
    "model": fuzz_model,
    "files": fuzz_files,
    "batch": fuzz_batch,
    "context": fuzz_context,
    "sampler_chain": fuzz_sampler_chain,
    "common_sampler": fuzz_common_sampler,
    "grammar_text": fuzz_grammar_text,
    "chat": fuzz_chat,
    "lifetimes": fuzz_lifetimes,
}

# -- crashes found by the properties, each reduced to the call that crashed ----------------------
# Each case must end with the process alive: the call either returns or raises an ALLOWED error.


def _case_empty_chain_sample(env: Env) -> None:
    from pyollama.llama import SamplerChain

    env.tracer.call("SamplerChain().sample", SamplerChain().sample, _decoded_context(env), 0)


def _case_chain_without_selector_sample(env: Env) -> None:
    from pyollama.llama import SamplerChain

    chain = SamplerChain()
    chain.add_top_k(5)
    env.tracer.call("SamplerChain[top_k].sample", chain.sample, _decoded_context(env), 0)


def _grammar_chain(env: Env) -> Any:
    from pyollama.llama import SamplerChain

    chain = SamplerChain()
    chain.add_grammar(env.tiny, 'root ::= "ab"')
    chain.add_greedy()
    return chain


def _case_grammar_chain_accepts_end_of_generation_early(env: Env) -> None:
    env.tracer.call("SamplerChain[grammar].accept(eos)", _grammar_chain(env).accept, env.tiny.token_eos)


def _case_grammar_chain_sample_after_rejected_token(env: Env) -> None:
    chain = _grammar_chain(env)
    env.tracer.call("SamplerChain[grammar].accept(300)", chain.accept, 300)
    env.tracer.call("SamplerChain[grammar].sample", chain.sample, _decoded_context(env), 0)


def _grammar_sampler(env: Env) -> Any:
    from pyollama.llama import SamplerSettings

    return SamplerSettings(grammar='root ::= "ab"', temperature=0.0).build(env.tiny)


def _case_common_sampler_accepts_end_of_generation_early(env: Env) -> None:
    env.tracer.call("CommonSampler[grammar].accept(eos)", _grammar_sampler(env).accept, env.tiny.token_eos)


def _case_common_sampler_sample_after_rejected_token(env: Env) -> None:
    sampler = _grammar_sampler(env)
    env.tracer.call("CommonSampler[grammar].accept(300)", sampler.accept, 300)
    env.tracer.call("CommonSampler[grammar].sample", sampler.sample, _decoded_context(env), 0)


def _case_sample_many_after_rejected_token(env: Env) -> None:
    from pyollama._native import sample_many

    sampler = _grammar_sampler(env)
    env.tracer.call("CommonSampler[grammar].accept(300)", sampler.accept, 300)
    env.tracer.call("sample_many", sample_many, _decoded_context(env), [sampler], [0])


def _case_batch_of_int32_max_capacity(env: Env) -> None:
    from pyollama.llama import Batch

    env.tracer.call("Batch", Batch, 2**31 - 1)


def _case_batch_of_int32_max_sequence_ids(env: Env) -> None:
    from pyollama.llama import Batch

    batch = env.tracer.call("Batch", Batch, 1000, 2**31 - 1)
    if batch is not RAISED:
        env.tracer.call("Batch.add", batch.add, 1, 0, 0, True)


def _case_context_with_absurd_thread_count(env: Env) -> None:
    from pyollama.llama import Batch, Context

    ctx = Context(env.tiny, n_ctx=32, n_threads=1)
    batch = Batch(1)
    batch.add(1, 0, 0, True)
    env.tracer.call("Context.set_n_threads", ctx.set_n_threads, 100_000)
    env.tracer.call("Context.decode", ctx.decode, batch)


def _case_penalties_over_int32_max_last_n(env: Env) -> None:
    from pyollama.llama import SamplerChain

    env.tracer.call("SamplerChain.add_penalties", SamplerChain().add_penalties, env.tiny, 2**31 - 1)


def _case_quantize_empty_source_path(env: Env) -> None:
    from pyollama.llama import quantize

    env.tracer.call("quantize", quantize, "", env.scratch / "out.gguf", "Q8_0")


def _case_json_schema_nested_100000_deep(env: Env) -> None:
    from pyollama.llama import json_schema_to_grammar

    depth = 100_000
    env.tracer.call(
        "json_schema_to_grammar", json_schema_to_grammar, '{"items":' * depth + "{}" + "}" * depth
    )


def _case_gbnf_nested_100000_deep(env: Env) -> None:
    from pyollama.llama import SamplerChain

    depth = 100_000
    gbnf = "root ::= " + "(" * depth + '"a"' + ")" * depth
    env.tracer.call("SamplerChain.add_grammar", SamplerChain().add_grammar, env.tiny, gbnf)


def _case_chat_template_infinite_recursion(env: Env) -> None:
    from pyollama.llama import ChatTemplates

    template = "{% macro f() %}{{ f() }}{% endmacro %}{{ f() }}"
    messages = json.dumps([{"role": "user", "content": "hi"}])
    templates = env.tracer.call("ChatTemplates", ChatTemplates, env.tiny, template)
    if templates is not RAISED:
        env.tracer.call("ChatTemplates.apply", templates.apply, messages)


def _case_context_outlives_deleted_model(env: Env) -> None:
    from pyollama.llama import Batch, Context, Model, SamplerSettings

    model = Model(env.tiny_path)
    ctx = Context(model, n_ctx=32, n_threads=1)
    sampler = SamplerSettings(temperature=0.0).build(model)
    n_vocab = model.n_vocab
    del model
    gc.collect()
    batch = Batch(2)
    batch.add_sequence([1, 2], 0)
    assert ctx.decode(batch) == 0
    assert ctx.logits(-1).shape == (n_vocab,)
    assert 0 <= sampler.sample(ctx, -1) < n_vocab
    assert ctx.model.n_vocab == n_vocab


def _case_chat_params_outlive_templates_and_model(env: Env) -> None:
    from pyollama.llama import ChatTemplates, Model

    model = Model(env.tiny_path, vocab_only=True)
    templates = ChatTemplates(model, "{% for m in messages %}{{ m.content }}{% endfor %}")
    params = templates.apply(json.dumps([{"role": "user", "content": "hi"}]))
    del model, templates
    gc.collect()
    assert params.prompt == "hi"
    assert params.parse("hello")["content"] == "hello"


CASES: dict[str, Callable[[Env], None]] = {
    name.removeprefix("_case_"): fn for name, fn in list(globals().items()) if name.startswith("_case_")
}


def _child_main(argv: list[str]) -> None:
    kind, name, seed, tiny_path, smollm2_path, scratch = argv
    resource.setrlimit(resource.RLIMIT_AS, (ADDRESS_SPACE_LIMIT, ADDRESS_SPACE_LIMIT))
    faulthandler.enable()
    from pyollama._native import set_log_level

    set_log_level(5)  # llama.cpp logging off; ggml still prints an assertion before aborting
    env = Env(tiny_path, smollm2_path, Path(scratch), Tracer())
    if kind == "property":
        PROPERTIES[name](env, int(seed))
    else:
        CASES[name](env)
    os.write(2, b"DONE\n")


# ------------------------------------------------------------------------------------------------
# pytest side
# ------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_llama_cached(tmp_path_factory, "F32")


def _run_child(kind: str, name: str, tiny: Path, smollm2: Path, scratch: Path) -> None:
    # A fixed seed by default so that CI is repeatable; PYOLLAMA_FUZZ_SEED=random explores new
    # inputs (each crash found that way becomes a CASE and a fix).
    wanted = os.environ.get("PYOLLAMA_FUZZ_SEED", "")
    seed = random.randrange(2**32) if wanted == "random" else int(wanted or DEFAULT_SEED)
    replay = f"PYOLLAMA_FUZZ_SEED={seed}" if kind == "property" else "deterministic"
    cmd = [sys.executable, __file__, kind, name, str(seed), str(tiny), str(smollm2), str(scratch)]
    # no gdb backtraces from ggml_abort: they are slow and the trace already names the call
    env = dict(os.environ, GGML_NO_BACKTRACE="1", PYTHONFAULTHANDLER="1")
    try:
        run = subprocess.run(cmd, check=False, capture_output=True, text=True, errors="replace",
                             timeout=WORKER_TIMEOUT_S, env=env)  # fmt: skip
    except subprocess.TimeoutExpired as e:
        tail = _tail(e.stderr.decode(errors="replace") if isinstance(e.stderr, bytes) else (e.stderr or ""))
        pytest.fail(f"{kind} {name} hung for {WORKER_TIMEOUT_S}s ({replay}); last calls:\n{tail}")
    if run.returncode != 0 or not run.stderr.rstrip().endswith("DONE"):
        status = (
            f"died with {signal.Signals(-run.returncode).name}"
            if run.returncode < 0
            else f"exited {run.returncode}"
        )
        pytest.fail(
            f"{kind} {name} {status} ({replay}); last output:\n{_tail(run.stderr)}\n{run.stdout[-3000:]}"
        )


def _tail(text: str) -> str:
    """The last traced calls, then what came after the last one (the error, the assertion, the
    signal), without faulthandler's stack of hypothesis frames."""
    lines = text.splitlines()
    calls = [i for i, line in enumerate(lines) if line.startswith("CALL ")]
    last = calls[-1] if calls else -1
    before = [lines[i] for i in calls[-TRACE_TAIL_LINES:]]
    after = [line for line in lines[last + 1 :] if not line.startswith("  File ")][:40]
    return "\n".join(line[:400] for line in before + after)


@pytest.mark.parametrize("name", sorted(PROPERTIES))
def test_random_calls_raise_python_errors_and_never_crash(
    name: str, tiny_path: Path, smollm2_path: Path, tmp_path: Path
) -> None:
    _run_child("property", name, tiny_path, smollm2_path, tmp_path)


@pytest.mark.parametrize("name", sorted(CASES))
def test_reduced_crash_case_leaves_the_process_alive(
    name: str, tiny_path: Path, smollm2_path: Path, tmp_path: Path
) -> None:
    _run_child("case", name, tiny_path, smollm2_path, tmp_path)


if __name__ == "__main__":
    _child_main(sys.argv[1:])
