from __future__ import annotations

import pytest

from pyollama.engine.detokenizer import StreamDetokenizer
from pyollama.engine.prompt_cache import common_prefix_len, pick_slot


def _run(pieces: list[bytes], stops: list[str]) -> tuple[list[str], bool]:
    d = StreamDetokenizer(stops)
    out = [d.push(p) for p in pieces]
    out.append(d.finish())
    return [o for o in out if o], d.stopped


def test_multibyte_characters_are_never_split() -> None:
    data = "né 🙂!".encode()
    out, _ = _run([data[i : i + 1] for i in range(len(data))], [])
    assert "".join(out) == "né 🙂!"
    assert all("\ufffd" not in o for o in out)


def test_stop_string_across_pieces_is_cut_and_never_leaks() -> None:
    out, stopped = _run([b"Hello <", b"|e", b"nd|> tail"], ["<|end|>"])
    assert stopped and "".join(out) == "Hello "
    assert not any("<" in o for o in out)


def test_partial_stop_prefix_is_released_when_it_does_not_complete() -> None:
    out, stopped = _run([b"a <", b"b"], ["<|end|>"])
    assert not stopped and "".join(out) == "a <b"
    assert out[0] == "a "  # the "<" was held back until it could not start the stop string


def test_unfinished_character_at_the_end_becomes_replacement() -> None:
    out, _ = _run(["🙂".encode()[:2]], [])
    assert "".join(out) == "\ufffd"


@pytest.mark.parametrize("stops", [["\n\n"], ["User:", "\n\n"]])
def test_earliest_stop_wins(stops: list[str]) -> None:
    out, stopped = _run([b"line one\n\nUser: x"], stops)
    assert stopped and "".join(out) == "line one"


def test_prompt_cache_picks_longest_prefix() -> None:
    cached = [[1, 2, 3], [1, 2, 3, 4, 5], []]
    assert common_prefix_len([1, 2, 3, 9], [1, 2, 3, 4]) == 3
    assert pick_slot(cached, [0, 1, 2], [1, 2, 3, 4, 5, 6]) == (1, 5)
    assert pick_slot(cached, [0, 2], [7]) == (2, 0)  # no overlap: the emptiest slot
