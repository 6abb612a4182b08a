"""Prompt lookup drafts: what followed the latest earlier occurrence of the history's suffix, as
many as that occurrence matches the history's end beyond NGRAM_TRUST tokens."""

from __future__ import annotations

from pyollama.engine.speculative import NGRAM_TRUST, NgramDrafter


def test_a_copy_in_progress_drafts_what_followed_more_the_longer_it_runs() -> None:
    original = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]
    # five tokens copied so far: the match is 5 long, so 5 - 3 drafts
    assert NgramDrafter().draft([*original, 0, 1, 2, 3, 4, 5], 8) == [6, 7]
    # eight copied: five drafts
    assert NgramDrafter().draft([*original, 0, *original[:8]], 8) == [9, 10, 11, 12, 0]
    # never more than asked
    assert NgramDrafter().draft([*original, 0, *original[:8]], 2) == [9, 10]


def test_a_chance_short_match_drafts_nothing() -> None:
    # "2 3 4" occurred before, but the copy is only three tokens long
    assert NgramDrafter().draft([1, 2, 3, 4, 5, 6, 7, 9, 9, 2, 3, 4], 8) == []
    assert NGRAM_TRUST == 3


def test_the_latest_occurrence_wins() -> None:
    # "10 11 12 3 4" appears twice, followed by 5 and later by 8; the latest one is taken
    history = [10, 11, 12, 3, 4, 5, 0, 10, 11, 12, 3, 4, 8, 0, 10, 11, 12, 3, 4]
    assert NgramDrafter().draft(history, 8) == [8, 0, 10]


def test_no_match_no_draft_and_never_itself() -> None:
    drafter = NgramDrafter()
    assert drafter.draft([1, 2, 3, 4], 4) == []
    assert drafter.draft([5], 4) == []
    # a repeated token: the latest earlier "7 7 7 7" ends before the last token, never at it
    assert drafter.draft([7, 7, 7], 2) == []
    assert drafter.draft([7] * 6, 4) == [7]


def test_drafts_are_cut_at_the_history_end_and_at_k() -> None:
    history = [1, 2, 3, 4, 5, 6] * 3
    assert NgramDrafter().draft(history, 10) == [1, 2, 3, 4, 5, 6]
    assert NgramDrafter().draft(history, 1) == [1]


def test_a_growing_history_is_indexed_incrementally_and_a_new_one_from_scratch() -> None:
    drafter = NgramDrafter()
    seq = [10, 11, 12, 13, 14, 15, 16]
    assert drafter.draft(seq, 2) == []
    seq += [0, 10, 11, 12, 13]
    assert drafter.draft(seq, 2) == [14]
    seq += [14, 15]
    assert drafter.draft(seq, 3) == [16, 0, 10]
    # another sequence reuses the drafter (a slot taken by a new request): no stale n-grams
    assert drafter.draft([10, 11, 12, 13, 50, 51], 2) == []
    assert drafter.draft([10, 11, 12, 13, 50, 51, 10, 11, 12, 13, 50], 2) == [51, 10]


def test_matches_a_brute_force_search() -> None:
    import random

    rng = random.Random(7)
    drafter = NgramDrafter()
    history: list[int] = []
    for _ in range(600):
        # mostly copies of earlier stretches, sometimes a random token
        if history and rng.random() < 0.85:
            start = rng.randrange(len(history))
            history.extend(history[start : start + rng.randrange(1, 6)])
        else:
            history.append(rng.randrange(6))
        got = drafter.draft(history, 8)
        expected: list[int] = []
        for n in range(min(4, len(history) - 1), 1, -1):
            suffix = history[-n:]
            ends = [e for e in range(n, len(history)) if history[e - n : e] == suffix]
            if ends:
                end = max(ends)
                length = 0
                while length < 8 + NGRAM_TRUST and end - 1 - length >= 0 and (
                        history[end - 1 - length] == history[-1 - length]):
                    length += 1
                expected = history[end : end + max(0, min(8, length - NGRAM_TRUST))]
                break
        assert got == expected, history
