"""Typed errors, each carrying the HTTP status the server answers with.

Raised anywhere below the server (store, engine, templates); mapped to
`{"error": message}` with `status` in exactly one place (server/responses.py).
Messages are Ollama's own texts where Ollama has one (../shared/API.md).
"""

from __future__ import annotations


class PyollamaError(Exception):
    """Base class: a failure with a message meant for the client."""

    status: int = 500

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        if status is not None:
            self.status = status

    def __str__(self) -> str:
        return self.message


class BadRequestError(PyollamaError):
    """The request is malformed or asks for something the model cannot do (400)."""

    status = 400


class UnauthorizedError(PyollamaError):
    status = 401


class NotFoundError(PyollamaError):
    """A model, blob or manifest that does not exist (404)."""

    status = 404


class CanceledError(PyollamaError):
    """The client went away before the request finished (499)."""

    status = 499


class ServerBusyError(PyollamaError):
    """The request queue is full (503)."""

    status = 503

    def __init__(self, message: str = "server busy, please try again.  maximum pending requests exceeded") -> None:
        super().__init__(message)


class ModelLoadError(PyollamaError):
    """llama.cpp could not load a model file (500)."""

    status = 500


class RegistryError(PyollamaError):
    """A registry answered with an error or sent bad data (pull/push)."""

    status = 500


class DigestMismatchError(BadRequestError):
    """Bytes whose sha256 is not the one announced."""
