"""Fill in the middle (`suffix` on /api/generate) for every model whose vocabulary has FIM tokens,
whatever its template, through the official `ollama` client: the `insert` capability, the exact
prompt tokens the model saw (the reply's `context`), and Ollama's 400 for a model that cannot."""

from __future__ import annotations

from pathlib import Path

import ollama
import openai
import pytest

from pyollama.gguf import FIM_ROLES, read_gguf_info
from pyollama.llama import Model
from tests.server.conftest import LiveServer
from tests.server.features.conftest import BASE, create, upload
from tests.server.features.media_helpers import (
    FIM_KEYS,
    FIM_LEGACY_KEYS,
    FIM_TOKENS,
    write_fim_llama,
    write_tiny_llama,
)

GREEDY = {"temperature": 0, "num_predict": 4, "seed": 1}
PROMPT, SUFFIX = "def add(a, b):\n    ", "\n    return c\n"

# A chat template that knows nothing of `.Suffix`: in Ollama such a model has no `insert`.
CHAT_TEMPLATE = "{{ if .System }}system: {{ .System }}\n{{ end }}user: {{ .Prompt }}\nassistant: "

# How a vocabulary tells llama.cpp its FIM tokens: today's keys, the older keys (with names
# llama.cpp would not recognise, so only the keys can find them), or only the tokens' names
# (CodeLlama's SentencePiece pieces, no keys at all).
VOCABULARIES: dict[str, tuple[dict[str, str], tuple[str, str, str] | None]] = {
    "keys": (FIM_TOKENS, FIM_KEYS),
    "legacy-keys": ({"pre": "<infill_a>", "suf": "<infill_b>", "mid": "<infill_c>"}, FIM_LEGACY_KEYS),
    "names": ({"pre": "▁<PRE>", "suf": "▁<SUF>", "mid": "▁<MID>"}, None),
}


@pytest.fixture(scope="module", params=sorted(VOCABULARIES))
def fim_vocab(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> tuple[str, Path]:
    names, keys = VOCABULARIES[request.param]
    path = write_fim_llama(tmp_path_factory.mktemp("fim-vocab") / f"{request.param}.gguf", names, keys)
    return request.param, path


@pytest.fixture(scope="module", params=["gguf", "template"])
def infill_model(
    request: pytest.FixtureRequest, features_server: LiveServer, fim_vocab: tuple[str, Path]
) -> tuple[str, Path]:
    """A model created from the FIM GGUF with no template of its own, or with a Go chat template
    that has no `.Suffix`."""
    kind, path = fim_vocab
    name = f"infill-{kind}-{request.param}"
    body = {"model": name, "files": {path.name: upload(features_server, path)}}
    if request.param == "template":
        body["template"] = CHAT_TEMPLATE
    create(features_server, body)
    return name, path


def _fim_prompt(vocab: Model, prompt: str, suffix: str) -> list[int]:
    """What llama-server's /infill evaluates: BOS, prefix token, prompt, suffix token, suffix, middle token."""
    fim = vocab.fim_tokens
    bos = [vocab.token_bos] if vocab.add_bos and vocab.token_bos is not None else []
    return [
        *bos, fim["pre"], *vocab.tokenize(prompt, False, False),
        fim["suf"], *vocab.tokenize(suffix, False, False), fim["mid"],
    ]


def test_store_finds_the_fim_tokens_llama_cpp_finds(fim_vocab: tuple[str, Path]) -> None:
    _, path = fim_vocab
    native = Model(path, vocab_only=True).fim_tokens
    assert all(role in native for role in FIM_ROLES)
    assert read_gguf_info(path).fim_tokens == {role: native[role] for role in FIM_ROLES}


def test_suffix_fills_in_the_middle_from_the_vocabularys_fim_tokens(
    client: ollama.Client, infill_model: tuple[str, Path]
) -> None:
    name, path = infill_model
    assert "insert" in (client.show(name).capabilities or [])
    expected = _fim_prompt(Model(path, vocab_only=True), PROMPT, SUFFIX)
    reply = client.generate(model=name, prompt=PROMPT, suffix=SUFFIX, options=GREEDY)
    assert reply.done and reply.eval_count
    # `context`: the tokens the model evaluated, then the ones it generated
    assert reply.context is not None
    assert reply.context[: len(expected)] == expected
    assert len(reply.context) - len(expected) <= reply.eval_count


def test_streamed_suffix_reply_ends_with_the_same_context(
    client: ollama.Client, infill_model: tuple[str, Path]
) -> None:
    name, path = infill_model
    expected = _fim_prompt(Model(path, vocab_only=True), "x = ", "\nprint(x)")
    chunks = list(client.generate(model=name, prompt="x = ", suffix="\nprint(x)", options=GREEDY, stream=True))
    assert chunks[-1].done and all(not c.done for c in chunks[:-1])
    assert chunks[-1].context is not None and chunks[-1].context[: len(expected)] == expected


def test_suffix_on_a_template_with_suffix_support_still_renders_the_template(
    client: ollama.Client, features_server: LiveServer, fim_vocab: tuple[str, Path]
) -> None:
    """Ollama's way wins where the template can fill in the middle: its text, tokenized."""
    kind, path = fim_vocab
    names = VOCABULARIES[kind][0]
    template = "{{- if .Suffix }}[P]{{ .Prompt }}[S]{{ .Suffix }}[M]{{- else }}{{ .Prompt }}{{- end }}"
    name = f"infill-{kind}-own-template"
    create(features_server, {"model": name, "files": {path.name: upload(features_server, path)},
                             "template": template})
    vocab = Model(path, vocab_only=True)
    reply = client.generate(model=name, prompt="a", suffix="b", options=GREEDY)
    rendered = vocab.tokenize("[P]a[S]b[M]", True, True)
    assert reply.context is not None and reply.context[: len(rendered)] == rendered
    assert not set(reply.context[: len(rendered)]) & {vocab.fim_tokens[role] for role in names}


@pytest.mark.parametrize("template", [None, CHAT_TEMPLATE])
def test_suffix_without_fim_tokens_or_template_support_is_ollamas_400(
    client: ollama.Client, features_server: LiveServer, tmp_path_factory: pytest.TempPathFactory,
    template: str | None,
) -> None:
    path = write_tiny_llama(tmp_path_factory.mktemp("no-fim") / "tiny.gguf")
    name = "no-fim-template" if template else "no-fim"
    body = {"model": name, "files": {"tiny.gguf": upload(features_server, path)}}
    if template:
        body["template"] = template
    create(features_server, body)
    assert "insert" not in (client.show(name).capabilities or [])
    with pytest.raises(ollama.ResponseError) as refused:
        client.generate(model=name, prompt="def f(", suffix=")")
    assert refused.value.status_code == 400
    assert refused.value.error == f"registry.ollama.ai/library/{name}:latest does not support insert"


def test_suffix_on_smollm2_is_ollamas_400(client: ollama.Client) -> None:
    """SmolLM2's vocabulary has `<reponame>` and `<file_sep>` but no prefix, suffix or middle token."""
    assert "insert" not in (client.show(BASE).capabilities or [])
    with pytest.raises(ollama.ResponseError) as refused:
        client.generate(model=BASE, prompt="def f(", suffix=")")
    assert refused.value.status_code == 400
    assert refused.value.error == "registry.ollama.ai/library/smollm2:135m does not support insert"


def test_openai_completions_suffix_fills_in_the_middle_the_same_way(
    client: ollama.Client, features_server: LiveServer, infill_model: tuple[str, Path]
) -> None:
    name, _ = infill_model
    oai = openai.OpenAI(base_url=f"{features_server.url}/v1", api_key="unused", timeout=300)
    completion = oai.completions.create(model=name, prompt=PROMPT, suffix=SUFFIX, max_tokens=4, temperature=0)
    native = client.generate(model=name, prompt=PROMPT, suffix=SUFFIX, options={"temperature": 0, "num_predict": 4})
    assert native.eval_count and native.response
    assert completion.choices[0].text == native.response
