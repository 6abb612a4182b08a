from __future__ import annotations

from pathlib import Path

import pytest

from pyollama.llama import Context, Model


@pytest.fixture(scope="session")
def smollm2(smollm2_path: Path) -> Model:
    return Model(smollm2_path)


@pytest.fixture()
def ctx(smollm2: Model) -> Context:
    return Context(smollm2, n_ctx=1024, n_seq_max=2, n_threads=2)
