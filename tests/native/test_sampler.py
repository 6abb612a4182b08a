from __future__ import annotations

import json

import pytest

from pyollama.llama import Batch, Context, Model, SamplerChain, SamplerSettings, json_schema_to_grammar


def _generate(model: Model, settings: SamplerSettings, prompt: str, n: int = 40) -> str:
    ctx = Context(model, n_ctx=512, n_threads=2)
    sampler = settings.build(model)
    tokens = model.tokenize(prompt, add_special=True, parse_special=True)
    batch = Batch(512)
    batch.add_sequence(tokens, 0, 0, True)
    ctx.decode(batch)
    out: list[int] = []
    pos = len(tokens)
    for _ in range(n):
        tok = sampler.sample(ctx, -1)
        sampler.accept(tok)
        if model.is_eog(tok):
            break
        out.append(tok)
        batch.clear()
        batch.add(tok, pos, 0, True)
        pos += 1
        ctx.decode(batch)
    return model.detokenize(out)


CHAT = "<|im_start|>user\nGive me a JSON object describing a cat.<|im_end|>\n<|im_start|>assistant\n"


def test_grammar_constrains_output_to_the_schema(smollm2: Model) -> None:
    schema = {
        "type": "object",
        "properties": {"name": {"type": "string", "maxLength": 12}, "age": {"type": "integer"}},
        "required": ["name", "age"],
    }
    grammar = json_schema_to_grammar(schema)
    for seed in (1, 2, 3):
        text = _generate(smollm2, SamplerSettings(seed=seed, temperature=1.5, grammar=grammar), CHAT, 60)
        value = json.loads(text)
        assert set(value) == {"name", "age"} and isinstance(value["age"], int)


def test_seeded_sampling_is_reproducible(smollm2: Model) -> None:
    a = _generate(smollm2, SamplerSettings(seed=42, temperature=1.0), CHAT, 20)
    b = _generate(smollm2, SamplerSettings(seed=42, temperature=1.0), CHAT, 20)
    assert a == b


def test_invalid_grammar_and_schema_raise_value_error(smollm2: Model) -> None:
    with pytest.raises(ValueError):
        SamplerSettings(grammar="root ::= (").build(smollm2)
    with pytest.raises(ValueError):
        json_schema_to_grammar("{not json")
    chain = SamplerChain()
    with pytest.raises(ValueError):
        chain.add_grammar(smollm2, "root ::= undefined_rule")
    with pytest.raises(ValueError):
        chain.add_top_p(1.5)
    with pytest.raises(IndexError):
        chain.add_logit_bias(smollm2, {smollm2.n_vocab: 1.0})


def test_low_level_chain_with_every_stage_samples_valid_tokens(smollm2: Model) -> None:
    ctx = Context(smollm2, n_ctx=256, n_threads=2)
    batch = Batch(64)
    batch.add_sequence(smollm2.tokenize("Hello", add_special=True), 0, 0, True)
    ctx.decode(batch)
    chain = SamplerChain()
    chain.add_penalties(smollm2, 64, 1.1, 0.1, 0.1)
    chain.add_logit_bias(smollm2, {42: -100.0})
    chain.add_top_k(40)
    chain.add_typical(0.95)
    chain.add_top_p(0.9)
    chain.add_min_p(0.05)
    chain.add_temp(0.7)
    chain.add_dist(7)
    assert len(chain) == 8
    tok = chain.sample(ctx, -1)
    assert 0 <= tok < smollm2.n_vocab and tok != 42
    mirostat = SamplerChain()
    mirostat.add_temp(0.8)
    mirostat.add_mirostat_v2(3)
    assert 0 <= mirostat.sample(ctx, -1) < smollm2.n_vocab
