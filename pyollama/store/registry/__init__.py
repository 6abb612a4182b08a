"""Pull and push models: Ollama's registry protocol, also against plain Docker/OCI registries.

`pull_model` and `push_model` are generators of `Progress` objects, the lines `/api/pull`
and `/api/push` stream; a failure is raised (a `RegistryError`) after the lines so far, and
the server turns it into the final `{"error": ...}` line.

- `client`: requests to one repository, retries, auth challenges; `auth`: credentials;
- `transfer`: progress lines and tunables shared by pull and push;
- `partial`: a blob being downloaded (locked partial file, resume states, hash);
- `pull`, `push`: the two protocols.
"""

from __future__ import annotations

from pyollama.store.registry.pull import pull_model
from pyollama.store.registry.push import push_model
from pyollama.store.registry.transfer import Progress, TransferOptions, registry_base_url

__all__ = ["Progress", "TransferOptions", "pull_model", "push_model", "registry_base_url"]
