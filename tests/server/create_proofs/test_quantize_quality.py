"""q8_0 and q4_K_M made by `/api/create` from an F16 model stay close to it, and are smaller.

The F16 source is SmolLM2-135M-Instruct (its Q4_1 weights dequantized: a real LLM, so perplexity
and greedy predictions mean something). It is uploaded to the real server, created, and quantized
there with `from` + `quantize`; the test then reads the blobs the manifests name and scores every
next-token prediction over a fixed ~430-token text against the F16 model's.

Measured here (2 threads, x86-64): perplexity F16 11.23, Q8_0 11.29, Q4_K_M 12.06; greedy
agreement with F16 96.1% and 88.3%; for scale, the original Q4_1 file, whose weights are exactly
the F16 model's, agrees 96.8% (llama.cpp quantizes activations for quantized matmuls).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest
import requests
from create_proofs_helpers import Quality, Served, compare, file_digest, text_logits

from pyollama.store.names import ModelName
from pyollama.store.store import Store

TYPES = ("F16", "Q8_0", "Q4_K_M")


@dataclass(frozen=True)
class Made:
    size: int  # bytes of the model layer
    quality: Quality  # against the F16 model


def _create(served: Served, body: dict[str, object]) -> None:
    response = requests.post(f"{served.url}/api/create", json={**body, "stream": False}, timeout=600)
    assert (response.status_code, response.json()) == (200, {"status": "success"}), body


@pytest.fixture(scope="module")
def made(served: Served, smollm2_f16: Path) -> dict[str, Made]:
    digest = file_digest(smollm2_f16)
    with open(smollm2_f16, "rb") as f:
        upload = requests.post(f"{served.url}/api/blobs/{digest}", data=f, timeout=600)
    assert upload.status_code in (200, 201)
    _create(served, {"model": "smol-f16", "files": {"smollm2-f16.gguf": digest}})
    for kind in TYPES[1:]:
        _create(served, {"model": f"smol-{kind.lower()}", "from": "smol-f16", "quantize": kind.lower()})

    store = Store(served.models)
    paths = {}
    for kind in TYPES:
        name = f"smol-{kind.lower()}"
        show = requests.post(f"{served.url}/api/show", json={"model": name}, timeout=60).json()
        assert show["details"]["quantization_level"] == kind
        path = store.load_record(ModelName.parse(name)).model_path
        assert path is not None
        paths[kind] = path
    tokens, reference = text_logits(paths["F16"])
    out = {}
    for kind in TYPES:
        logits = reference if kind == "F16" else text_logits(paths[kind])[1]
        out[kind] = Made(size=paths[kind].stat().st_size, quality=compare(tokens, reference, logits))
    return out


def test_quantize_sizes_fall_from_f16_to_q8_0_to_q4_k_m(made: dict[str, Made]) -> None:
    f16, q8, q4 = (made[kind].size for kind in TYPES)
    assert f16 > q8 > q4
    # 16 -> 8.5 bits per weight for the matrices; Q4_K_M about 4.9 (some tensors fall back to Q5_0/Q8_0).
    assert q8 < 0.6 * f16 and q4 < 0.45 * f16


def test_quantize_q8_0_keeps_greedy_predictions_of_the_f16_source(made: dict[str, Made]) -> None:
    f16, q8 = made["F16"].quality, made["Q8_0"].quality
    assert f16.agreement == 1.0 and f16.kl == 0.0
    assert q8.agreement >= 0.95, q8
    assert q8.perplexity <= 1.02 * f16.perplexity, (q8, f16)
    assert q8.kl < 0.02, q8


def test_quantize_q4_k_m_stays_close_to_the_f16_source(made: dict[str, Made]) -> None:
    f16, q8, q4 = (made[kind].quality for kind in TYPES)
    assert q4.agreement >= 0.8, q4
    assert q4.perplexity <= 1.15 * f16.perplexity, (q4, f16)
    assert q4.kl < 0.15, q4
    # Fewer bits cost more than Q8_0 does: the measurement can tell the types apart.
    assert q4.kl > q8.kl
