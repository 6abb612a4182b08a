"""pyollama.server.responses.json_text: Go's compact JSON, with NumPy arrays (embedding vectors)
written as Go writes []float32."""

from __future__ import annotations

import json

import numpy as np
import pytest

from pyollama.golang.json import format_float
from pyollama.server.responses import json_text


def test_body_without_arrays_is_python_json_compact_and_utf8() -> None:
    body = {"model": "all-minilm", "x": [1, 2.5, None, True], "s": "héllo \u2028"}
    assert json_text(body) == json.dumps(body, ensure_ascii=False, separators=(",", ":"))


def test_embed_body_vectors_are_float32_text_in_place() -> None:
    vectors = np.float32([[0.1, -0.25, 1e-7], [0.012345679, 0.0, -0.0]])
    text = json_text({"model": "m", "embeddings": vectors, "total_duration": 5})
    assert text == ('{"model":"m","embeddings":[[0.1,-0.25,1e-7],[0.012345679,0,-0]],"total_duration":5}')
    decoded = json.loads(text)
    assert np.array_equal(np.float32(decoded["embeddings"]), vectors)


def test_arrays_nested_in_lists_of_objects_each_take_their_place() -> None:
    rows = np.float32([[1.5, 2.0], [3.25, -4.0]])
    body = {"data": [{"embedding": row, "index": i} for i, row in enumerate(rows)], "n": 2}
    assert json_text(body) == '{"data":[{"embedding":[1.5,2],"index":0},{"embedding":[3.25,-4],"index":1}],"n":2}'


def test_strings_that_look_like_a_stand_in_are_left_as_they_are() -> None:
    # the stand-in is random per call: a client's text cannot name it
    body = {"model": "pyollama-array-0000000000000000-0", "embeddings": np.float32([[1.0]])}
    assert json.loads(json_text(body)) == {"model": "pyollama-array-0000000000000000-0", "embeddings": [[1.0]]}


def test_numbers_are_each_float32s_shortest_go_text() -> None:
    vectors = np.random.default_rng(3).standard_normal((4, 64)).astype(np.float32)
    numbers = json_text({"e": vectors})[len('{"e":[['):-len("]]}")].replace("],[", ",").split(",")
    assert numbers == [format_float(float(x), 32) for x in vectors.ravel()]


def test_other_objects_are_still_refused() -> None:
    with pytest.raises(TypeError, match="not JSON serializable"):
        json_text({"x": object()})
