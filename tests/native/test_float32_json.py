"""`_native.float32_json`: float32 arrays as Go's encoding/json writes []float32, number for number
the text of `golang.json.format_float(x, 32)` (the Python statement of the rule)."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest

from pyollama import _native
from pyollama.golang.json import format_float


def _expected(values: np.ndarray) -> str:
    return "[" + ",".join(format_float(float(x), 32) for x in values) + "]"


def test_every_kind_of_float32_matches_the_python_rule() -> None:
    rng = np.random.default_rng(15)
    # random bit patterns cover every exponent (subnormals, the 1e-6 and 1e21 edges, huge values)
    bits = rng.integers(0, 2**32, size=20000, dtype=np.uint64).astype(np.uint32)
    values = bits.view(np.float32)
    values = values[np.isfinite(values)]
    edges = np.float32([0.0, -0.0, 1e-6, np.nextafter(np.float32(1e-6), np.float32(0)), 1e21,
                        np.nextafter(np.float32(1e21), np.float32(0)), 2**24 + 2, 1e20, 0.1, -1.0,
                        np.finfo(np.float32).max, np.finfo(np.float32).tiny, 1e-45])
    for chunk in (values, edges, rng.standard_normal(5000).astype(np.float32) / 20):
        assert _native.float32_json(chunk) == _expected(chunk)


def test_text_reads_back_as_the_same_float32s() -> None:
    vectors = np.random.default_rng(1).standard_normal((8, 384)).astype(np.float32)
    decoded = np.float32(json.loads(_native.float32_json(vectors)))
    assert np.array_equal(decoded, vectors)


def test_rows_nest_and_strided_views_read_their_own_elements() -> None:
    a = np.arange(12, dtype=np.float32).reshape(3, 4) / 8
    assert _native.float32_json(a) == "[" + ",".join(_expected(row) for row in a) + "]"
    assert _native.float32_json(a[:, 1]) == _expected(a[:, 1])
    assert _native.float32_json(a[::-1, ::2]) == "[" + ",".join(_expected(row) for row in a[::-1, ::2]) + "]"
    assert _native.float32_json(np.zeros((2, 0), np.float32)) == "[[],[]]"
    assert _native.float32_json(np.zeros(0, np.float32)) == "[]"


def test_float64_input_is_rounded_to_float32_first() -> None:
    assert _native.float32_json(np.array([0.1, 1 / 3])) == "[0.1,0.33333334]"


@pytest.mark.parametrize(("value", "text"), [(np.nan, "NaN"), (np.inf, "+Inf"), (-np.inf, "-Inf")])
def test_nan_and_infinities_are_refused_with_go_text(value: float, text: str) -> None:
    with pytest.raises(ValueError, match=f"^{re.escape('json: unsupported value: ' + text)}$"):
        _native.float32_json(np.float32([1.0, value]))


def test_arrays_of_other_ranks_are_refused() -> None:
    with pytest.raises(ValueError, match="1-D or 2-D"):
        _native.float32_json(np.zeros((2, 2, 2), np.float32))
    with pytest.raises(ValueError, match="1-D or 2-D"):
        _native.float32_json(np.float32(1.0))
