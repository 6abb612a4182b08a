"""Errors of the safetensors -> GGUF converter: all are the client's input (400)."""

from __future__ import annotations

from pyollama.errors import BadRequestError


class ConvertError(BadRequestError):
    """A checkpoint directory that cannot be converted (missing files, bad config, odd tensors)."""


class UnsupportedArchitectureError(ConvertError):
    """config.json names an architecture this converter does not handle (Ollama's message)."""

    def __init__(self, architecture: str) -> None:
        super().__init__(f'unsupported architecture "{architecture}"')
        self.architecture = architecture
