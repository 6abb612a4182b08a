"""Models: a loaded GGUF with its metadata and vocabulary, and LoRA adapters.

`Model` is the native class with a few Pythonic additions; every call checks
its arguments before reaching C (bad token ids raise IndexError).
"""

from __future__ import annotations

import os
from collections.abc import Callable

from pyollama import _native
from pyollama.llama.system import init_backends

LoraAdapter = _native.LoraAdapter

_FIM_NAMES = ("pre", "suf", "mid", "pad", "rep", "sep")


class Model(_native.Model):
    """A GGUF model loaded by llama.cpp (weights mmapped by default)."""

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        n_gpu_layers: int = 0,
        use_mmap: bool = True,
        use_mlock: bool = False,
        vocab_only: bool = False,
        main_gpu: int = 0,
        progress: Callable[[float], bool | None] | None = None,
        repack: bool = True,
    ) -> None:
        """`repack=False` keeps the weights in the GGUF's own layout on the CPU: no AMX tiles and
        no repacked (interleaved) blocks, so only the CPU's plain kernels run. Slower on CPUs
        that have those paths; the way around a faulty one."""
        init_backends()
        super().__init__(
            os.fspath(path),
            n_gpu_layers=n_gpu_layers,
            use_mmap=use_mmap,
            use_mlock=use_mlock,
            vocab_only=vocab_only,
            main_gpu=main_gpu,
            progress=progress,
            repack=repack,
        )

    @property
    def architecture(self) -> str:
        return self.meta("general.architecture") or ""

    @property
    def special_tokens(self) -> dict[str, int]:
        """bos/eos/eot/sep/nl/pad ids the model defines."""
        names = ("bos", "eos", "eot", "sep", "nl", "pad")
        found = {name: getattr(self, f"token_{name}") for name in names}
        return {name: tok for name, tok in found.items() if tok is not None}

    @property
    def fim_tokens(self) -> dict[str, int]:
        """Fill-in-the-middle token ids (pre/suf/mid/...) the model defines; empty when it has none."""
        found = {name: getattr(self, f"token_fim_{name}") for name in _FIM_NAMES}
        return {name: tok for name, tok in found.items() if tok is not None}

    @property
    def supports_fim(self) -> bool:
        fim = self.fim_tokens
        return all(k in fim for k in ("pre", "suf", "mid"))

    @property
    def is_embedding(self) -> bool:
        """True for encoder-only models (BERT family) or ones that declare a pooling type."""
        return bool(self.has_encoder and not self.has_decoder) or self.meta(
            f"{self.architecture}.pooling_type"
        ) not in (None, "0")
