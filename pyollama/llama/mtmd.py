"""Multimodal input: a projector (mmproj GGUF) next to a text model, through llama.cpp's `mtmd`.

A prompt names each image with `default_marker()`; `MtmdContext.tokenize` turns the text and the
encoded image files (PNG, JPEG, BMP, GIF) into chunks, and `MtmdContext.eval` encodes the images
with the projector and decodes everything into one sequence of a `Context`, leaving the last
token's logits at index -1 for the first sample. `eval` is not thread-safe: call it from the
thread that drives the context.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

from pyollama import _native
from pyollama.llama.model import Model

MtmdChunks = _native.MtmdChunks


def default_marker() -> str:
    """The text that stands for one image in a prompt (llama.cpp's `<__media__>`)."""
    return str(_native.mtmd_default_marker())


class MtmdContext(_native.MtmdContext):
    """A vision projector loaded for `model` (ValueError when the file has no vision encoder or is
    missing; RuntimeError when llama.cpp cannot load it, e.g. made for another model's width)."""

    def __init__(
        self,
        model: Model,
        projector_path: str | os.PathLike[str],
        *,
        n_threads: int = 0,
        use_gpu: bool = True,
        warmup: bool = True,
    ) -> None:
        super().__init__(
            model, os.fspath(projector_path), n_threads=n_threads, use_gpu=use_gpu, warmup=warmup
        )
        if not self.supports_vision:
            raise ValueError(f"projector {os.fspath(projector_path)} has no vision encoder")

    def tokenize(  # type: ignore[override]
        self,
        text: str,
        images: Sequence[bytes | bytearray | memoryview],
        *,
        add_special: bool = True,
        parse_special: bool = True,
    ) -> MtmdChunks:
        """Chunks for `text`, which holds one `default_marker()` per image, in order."""
        return super().tokenize(text, [bytes(image) for image in images], add_special, parse_special)


__all__ = ["MtmdChunks", "MtmdContext", "default_marker"]
