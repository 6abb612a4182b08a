"""The `all-minilm` that `pyollama serve` converts from safetensors embeds like sentence-transformers."""

from __future__ import annotations

from typing import Any

import numpy as np
import requests
from create_proofs_helpers import Served


def _cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.sum(a * b, axis=1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))


def test_reference_file_holds_distinct_unit_vectors(minilm_reference: dict[str, Any]) -> None:
    vectors = np.array([item["embedding"] for item in minilm_reference["items"]])
    assert vectors.shape == (16, 384)
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-4)
    # Different sentences are far below the 0.999 bar, so passing it means "the same sentence".
    similarity = vectors @ vectors.T
    np.fill_diagonal(similarity, 0.0)
    assert similarity.max() < 0.9


def test_embed_all_minilm_matches_sentence_transformers_for_every_sentence(
    served: Served, minilm_reference: dict[str, Any]
) -> None:
    items = minilm_reference["items"]
    sentences = [item["sentence"] for item in items]
    response = requests.post(
        f"{served.url}/api/embed", json={"model": "all-minilm", "input": sentences}, timeout=300
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["model"] == "all-minilm"
    ours = np.array(body["embeddings"])
    reference = np.array([item["embedding"] for item in items])
    assert ours.shape == reference.shape
    cosines = _cosines(ours, reference)
    worst = int(np.argmin(cosines))
    assert cosines.min() >= 0.999, f"cosine {cosines[worst]:.6f} for {sentences[worst]!r}"
    # /api/embed returns unit vectors, as Ollama does.
    assert np.allclose(np.linalg.norm(ours, axis=1), 1.0, atol=1e-4)


def test_embed_all_minilm_one_sentence_alone_matches_its_batched_reference(
    served: Served, minilm_reference: dict[str, Any]
) -> None:
    # The longest sentence on its own: no padding or batching can be hiding a difference.
    item = max(minilm_reference["items"], key=lambda i: len(i["sentence"]))
    response = requests.post(
        f"{served.url}/api/embed", json={"model": "all-minilm", "input": item["sentence"]}, timeout=300
    )
    assert response.status_code == 200, response.text
    ours = np.array(response.json()["embeddings"])
    assert _cosines(ours, np.array([item["embedding"]]))[0] >= 0.999
