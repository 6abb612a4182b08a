"""Prompt lookup drafts: what followed the latest earlier occurrence of the history's suffix."""

from __future__ import annotations

from pyollama.engine.speculative import NgramDrafter


def test_drafts_what_followed_the_suffix_last_time() -> None:
    history = [1, 2, 3, 4, 5, 6, 7, 9, 9, 2, 3, 4]
    assert NgramDrafter().draft(history, 3) == [5, 6, 7]


def test_the_latest_occurrence_wins_and_the_longest_suffix_first() -> None:
    # "3 4" is followed by 5 first and by 8 later; the longer "2 3 4" only once, by 5
    history = [2, 3, 4, 5, 0, 3, 4, 8, 0, 2, 3, 4]
    assert NgramDrafter().draft(history, 1) == [5]
    assert NgramDrafter().draft([2, 3, 4, 5, 0, 3, 4, 8, 0, 7, 3, 4], 2) == [8, 0]


def test_no_match_no_draft_and_never_itself() -> None:
    drafter = NgramDrafter()
    assert drafter.draft([1, 2, 3, 4], 4) == []
    assert drafter.draft([5], 4) == []
    # a single repeated token is not a two-token match until it has repeated
    assert drafter.draft([7, 7], 2) == []
    assert drafter.draft([7, 7, 7], 2) == [7]


def test_drafts_are_cut_at_the_history_end_and_at_k() -> None:
    history = [1, 2, 3, 1, 2]
    assert NgramDrafter().draft(history, 10) == [3, 1, 2]
    assert NgramDrafter().draft(history, 1) == [3]


def test_a_growing_history_is_indexed_incrementally_and_a_new_one_from_scratch() -> None:
    drafter = NgramDrafter()
    seq = [10, 11, 12, 13]
    assert drafter.draft(seq, 2) == []
    seq += [14, 10, 11]
    assert drafter.draft(seq, 2) == [12, 13]
    seq += [12, 13, 14, 10]
    assert drafter.draft(seq, 3) == [11, 12, 13]
    # another sequence reuses the drafter (a slot taken by a new request): no stale n-grams
    assert drafter.draft([10, 11, 50, 51], 2) == []
    assert drafter.draft([10, 11, 50, 51, 10, 11], 2) == [50, 51]


def test_matches_a_brute_force_search() -> None:
    import random

    rng = random.Random(7)
    drafter = NgramDrafter()
    history: list[int] = []
    for _ in range(400):
        history.append(rng.randrange(6))
        got = drafter.draft(history, 4)
        expected: list[int] = []
        for n in range(min(4, len(history) - 1), 1, -1):
            suffix = history[-n:]
            ends = [e for e in range(n, len(history)) if history[e - n : e] == suffix]
            if ends:
                expected = history[max(ends) : max(ends) + 4]
                break
        assert got == expected, history
