"""Optional API keys: `Authorization: Bearer <key>` on every endpoint once keys are configured
(or `x-api-key: <key>`, the header Anthropic's clients send to /v1/messages).

Ollama has no such check; pyollama adds it for servers that listen beyond localhost. Keys come
from PYOLLAMA_API_KEYS (a comma list) and/or PYOLLAMA_API_KEYS_FILE (one key per line; blank
lines and `#` comments ignored), read once when the app is built. Naming a key file turns the
check on even if the file holds no key (everything is then refused): a key file that cannot be
read stops the app from starting rather than leaving it open.

Left open: `GET /` and `HEAD /` (liveness probes) and CORS preflights (browsers never send
credentials on them). A refusal raises `ApiKeyError`, which responses.py answers with 401
`{"error": "unauthorized"}` (OpenAI's error shape under /v1) and `WWW-Authenticate: Bearer`.

Keys are compared in constant time: the SHA-256 of the presented token against the SHA-256 of
every key, all of them, every time, so neither a key's length nor its position in the list shows
in the response time.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable
from pathlib import Path

from flask import Flask, current_app, request

from pyollama.config import Config
from pyollama.errors import PyollamaError, UnauthorizedError

EXTENSION = "pyollama.api_keys"
UNAUTHORIZED = "unauthorized"


class ApiKeysFileError(PyollamaError):
    """PYOLLAMA_API_KEYS_FILE names a file that cannot be read."""


class ApiKeyError(UnauthorizedError):
    """A request without a valid API key (401)."""

    def __init__(self) -> None:
        super().__init__(UNAUTHORIZED)


def read_keys_file(path: Path) -> list[str]:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ApiKeysFileError(f"cannot read PYOLLAMA_API_KEYS_FILE {str(path)!r}: {exc}") from exc
    keys = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            keys.append(line)
    return keys


class ApiKeys:
    """The accepted keys, kept only as SHA-256 digests."""

    def __init__(self, keys: Iterable[str]) -> None:
        self._digests = tuple(_digest(key) for key in keys)

    @classmethod
    def from_config(cls, config: Config) -> ApiKeys | None:
        """The configured keys, or None when no key setting is present (no check at all)."""
        if not config.api_keys and config.api_keys_file is None:
            return None
        keys = list(config.api_keys)
        if config.api_keys_file is not None:
            keys += read_keys_file(config.api_keys_file)
        return cls(keys)

    def __len__(self) -> int:
        return len(self._digests)

    def accepts(self, token: str) -> bool:
        presented = _digest(token)
        matched = False
        for digest in self._digests:  # no early exit: every key is compared every time
            matched |= hmac.compare_digest(presented, digest)
        return matched and token != ""


def _digest(key: str) -> bytes:
    return hashlib.sha256(key.encode("utf-8")).digest()


def bearer_token(header: str) -> str:
    """The credentials of `Authorization: Bearer <token>` (scheme case-insensitive), else ""."""
    scheme, _, token = header.strip().partition(" ")
    return token.strip() if scheme.lower() == "bearer" else ""


def _is_open(method: str, path: str, preflight: bool) -> bool:
    if path == "/" and method in ("GET", "HEAD"):
        return True
    return method == "OPTIONS" and preflight


def check_api_key() -> None:
    """before_request: refuse requests without a valid key when keys are configured."""
    keys: ApiKeys | None = current_app.extensions.get(EXTENSION)
    if keys is None:
        return
    preflight = "Access-Control-Request-Method" in request.headers
    if _is_open(request.method, request.path, preflight):
        return
    token = bearer_token(request.headers.get("Authorization", "")) or request.headers.get("x-api-key", "").strip()
    if not keys.accepts(token):
        raise ApiKeyError()


def install_api_keys(app: Flask, config: Config) -> ApiKeys | None:
    """Turn the check on for `app` when `config` has keys; must run before the other
    before_request hooks are registered, so unauthenticated requests go no further."""
    keys = ApiKeys.from_config(config)
    app.extensions[EXTENSION] = keys
    app.before_request(check_api_key)
    return keys


__all__ = ["ApiKeyError", "ApiKeys", "ApiKeysFileError", "bearer_token", "check_api_key", "install_api_keys", "read_keys_file"]
