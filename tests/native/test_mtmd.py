"""The mtmd bindings: a tiny random Llama with a tiny gemma3 projector (both written by the test
helpers), images made in pure Python, and every argument check."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from pyollama.llama import Context, Model
from pyollama.llama.mtmd import MtmdContext, default_marker
from pyollama.llama.sampler import SamplerSettings, sample_many
from tests.server.features.media_helpers import IMAGE_TOKENS, png, write_gemma3_projector, write_tiny_llama


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("mtmd")
    return {
        "model": write_tiny_llama(root / "tiny.gguf"),
        "projector": write_gemma3_projector(root / "mmproj.gguf"),
        "narrow": write_gemma3_projector(root / "narrow.gguf", n_embd_text=128),
    }


@pytest.fixture(scope="module")
def model(files: dict[str, Path]) -> Model:
    return Model(files["model"])


@pytest.fixture(scope="module")
def mtmd(model: Model, files: dict[str, Path]) -> MtmdContext:
    return MtmdContext(model, files["projector"], n_threads=2)


@pytest.fixture()
def ctx(model: Model) -> Context:
    return Context(model, n_ctx=256, n_seq_max=2, n_threads=2)


def _prompt(text: str = "look: ") -> str:
    return text + default_marker() + " what is it?"


def test_tokenize_splits_text_and_image_chunks(model: Model, mtmd: MtmdContext) -> None:
    chunks = mtmd.tokenize(_prompt(), [png(40, 30)])
    assert chunks.types() == ["text", "image", "text"]
    assert chunks.n_tokens == len(chunks.text_tokens()) + IMAGE_TOKENS
    assert chunks.n_pos == chunks.n_tokens
    assert chunks.tokens(0)[0] == model.token_bos
    assert chunks.tokens(1) == []
    with pytest.raises(IndexError):
        chunks.tokens(3)


def test_eval_fills_sequence_and_leaves_last_logits(model: Model, mtmd: MtmdContext, ctx: Context) -> None:
    chunks = mtmd.tokenize(_prompt(), [png(16, 16)])
    n_past = mtmd.eval(ctx, chunks, 0, 1)
    assert n_past == chunks.n_pos
    assert ctx.seq_pos_max(1) == n_past - 1
    assert ctx.seq_pos_max(0) == -1
    assert ctx.logits(-1).shape == (model.n_vocab,)
    sampler = SamplerSettings(temperature=0).build(model)
    assert sample_many(ctx, [sampler], [-1])[0] == int(np.argmax(ctx.logits(-1)))


def test_eval_uses_the_image(model: Model, mtmd: MtmdContext) -> None:
    """Different pictures give different next-token logits: the projector's embeddings are decoded."""
    logits = []
    for colour in ((255, 0, 0), (0, 0, 255), (255, 0, 0)):
        ctx = Context(model, n_ctx=256, n_threads=2)
        mtmd.eval(ctx, mtmd.tokenize(_prompt(), [png(32, 32, colour)]), 0, 0)
        logits.append(ctx.logits(-1))
    assert not np.allclose(logits[0], logits[1])
    np.testing.assert_allclose(logits[0], logits[2], rtol=1e-4, atol=1e-4)


def test_eval_continues_after_n_past(mtmd: MtmdContext, ctx: Context) -> None:
    first = mtmd.eval(ctx, mtmd.tokenize(_prompt(), [png(8, 8)]), 0, 0)
    second = mtmd.eval(ctx, mtmd.tokenize(_prompt("and: "), [png(8, 8)], add_special=False), first, 0)
    assert second > first
    assert ctx.seq_pos_max(0) == second - 1


def test_missing_projector_file_is_value_error(model: Model, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="not found"):
        MtmdContext(model, tmp_path / "missing.gguf")


def test_text_model_as_projector_is_runtime_error(model: Model, files: dict[str, Path]) -> None:
    with pytest.raises(RuntimeError, match="failed to load projector"):
        MtmdContext(model, files["model"])


def test_projector_for_another_width_is_runtime_error(model: Model, files: dict[str, Path]) -> None:
    with pytest.raises(RuntimeError):
        MtmdContext(model, files["narrow"])


def test_vocab_only_model_cannot_take_projector(files: dict[str, Path]) -> None:
    with pytest.raises(ValueError):
        MtmdContext(Model(files["model"], vocab_only=True), files["projector"])


@pytest.mark.parametrize(
    ("text", "images", "message"),
    [
        ("no marker", [png(8, 8)], "0 media markers but 1 images"),
        (_prompt(), [], "1 media markers but 0 images"),
        (_prompt(), [b"GIF89a not really"], "could not be decoded"),
        (_prompt(), [b""], "could not be decoded"),
    ],
)
def test_tokenize_rejects_bad_input(mtmd: MtmdContext, text: str, images: list[bytes], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        mtmd.tokenize(text, images)


def test_eval_checks_its_arguments(
    model: Model, mtmd: MtmdContext, ctx: Context, files: dict[str, Path]
) -> None:
    chunks = mtmd.tokenize(_prompt(), [png(8, 8)])
    with pytest.raises(IndexError):
        mtmd.eval(ctx, chunks, 0, 2)
    with pytest.raises(IndexError):
        mtmd.eval(ctx, chunks, -1, 0)
    with pytest.raises(ValueError, match="positions"):
        mtmd.eval(ctx, chunks, 250, 0)
    other_model = Model(files["model"])
    with pytest.raises(ValueError, match="another model"):
        mtmd.eval(Context(other_model, n_ctx=64, n_threads=1), chunks, 0, 0)
    other_projector = MtmdContext(model, files["projector"], n_threads=1, warmup=False)
    with pytest.raises(ValueError, match="another projector"):
        other_projector.eval(ctx, chunks, 0, 0)
    embedder = Context(model, n_ctx=64, n_threads=1, embeddings=True, pooling="mean")
    with pytest.raises(ValueError, match="embeddings"):
        mtmd.eval(embedder, chunks, 0, 0)
