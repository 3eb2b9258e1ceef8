import json
import math
import os
from pathlib import Path

import numpy as np
import pytest

from aekit.data.nab import read_nab
from aekit.errors import DataError
from aekit.metrics.nab import (
    PROFILES,
    PUBLISHED_SCOREBOARD,
    nab_score,
    nab_scores,
    normalized_score,
    optimize_threshold,
    probation_length,
    scaled_sigmoid,
    score_file,
    sweep,
)

NO_PROBATION = 0.0


def sig(y: float) -> float:
    """The scaled sigmoid written out by hand: 2 / (1 + e^(5y)) - 1."""
    return 2.0 / (1.0 + math.exp(5.0 * y)) - 1.0


def hits(n: int, rows: list[int]) -> np.ndarray:
    s = np.zeros(n)
    s[rows] = 1.0
    return s


def test_profiles_are_nabs_cost_matrices():
    assert PROFILES == {
        "standard": {"tp": 1.0, "fp": 0.11, "fn": 1.0},
        "reward_low_FP_rate": {"tp": 1.0, "fp": 0.22, "fn": 1.0},
        "reward_low_FN_rate": {"tp": 1.0, "fp": 0.11, "fn": 2.0},
    }


def test_scaled_sigmoid_by_hand():
    assert scaled_sigmoid(0.0) == 0.0
    assert scaled_sigmoid(-1.0) == pytest.approx(0.98661, abs=1e-5)
    assert scaled_sigmoid(-0.5) == pytest.approx(0.84828, abs=1e-5)
    assert scaled_sigmoid(1.0) == pytest.approx(-0.98661, abs=1e-5)
    assert scaled_sigmoid(3.0) == pytest.approx(sig(3.0)) and scaled_sigmoid(3.0) > -1.0
    assert scaled_sigmoid(3.01) == -1.0
    assert np.allclose(scaled_sigmoid(np.array([-1.0, 0.25, 5.0])), [sig(-1.0), sig(0.25), -1.0])


def test_probation_is_15_percent_capped_at_750_rows():
    assert probation_length(20) == 3  # floor(0.15 * 20)
    assert probation_length(100) == 15
    assert probation_length(4000) == 600
    assert probation_length(5000) == 750
    assert probation_length(22695) == 750  # the cap 0.15 * 5000, not floor(3404.25)
    assert probation_length(10, probation_percent=0.0) == 0


def test_detection_at_the_window_start_earns_tp_weight_exactly():
    # 10 rows, one window [4, 7] (width 4), a detection at row 4 only
    raw, counts = score_file(hits(10, [4]), [(4, 7)], 0.5, "standard", NO_PROBATION)
    assert raw == 1.0  # sigma(-4/4) / sigma(-1)
    assert counts == {"tp": 1, "fp": 0, "fn": 3, "tn": 6}


def test_detection_at_the_window_end_earns_sigma_of_minus_one_over_width():
    raw, _ = score_file(hits(10, [7]), [(4, 7)], 0.5, "standard", NO_PROBATION)
    assert raw == pytest.approx(sig(-1 / 4) / sig(-1.0), abs=1e-12)  # -(7 - 7 + 1) / 4
    assert 0 < raw < 1


def test_only_the_first_detection_in_a_window_counts():
    raw, counts = score_file(hits(10, [5, 6, 7]), [(4, 7)], 0.5, "standard", NO_PROBATION)
    assert raw == pytest.approx(sig(-3 / 4) / sig(-1.0), abs=1e-12)  # row 5: -(7 - 5 + 1) / 4
    assert counts["tp"] == 3 and counts["fn"] == 1


def test_false_positive_before_any_window_costs_fp_weight():
    raw, counts = score_file(hits(10, [1, 4]), [(4, 7)], 0.5, "standard", NO_PROBATION)
    assert raw == pytest.approx(1.0 - 0.11, abs=1e-12)
    assert counts == {"tp": 1, "fp": 1, "fn": 3, "tn": 5}
    raw, _ = score_file(hits(10, [1]), [(4, 7)], 0.5, "reward_low_FP_rate", NO_PROBATION)
    assert raw == pytest.approx(-0.22 - 1.0, abs=1e-12)  # the FP and the missed window


def test_false_positive_after_a_window_is_scaled_by_its_distance():
    # window [4, 7], width 4: row 9 is (9 - 7) / (4 - 1) = 2/3 past it
    raw, _ = score_file(hits(10, [4, 9]), [(4, 7)], 0.5, "standard", NO_PROBATION)
    assert raw == pytest.approx(1.0 + 0.11 * sig(2 / 3), abs=1e-12)
    # window [2, 3], width 2: row 9 is 6 widths past it, beyond 3, so the full -fpWeight
    raw, _ = score_file(hits(10, [9]), [(2, 3)], 0.5, "standard", NO_PROBATION)
    assert raw == pytest.approx(-1.0 - 0.11, abs=1e-12)


def test_a_missed_window_costs_fn_weight():
    none = np.zeros(30)
    assert score_file(none, [(10, 14)], 0.5, "standard", NO_PROBATION)[0] == -1.0
    assert score_file(none, [(10, 14), (20, 24)], 0.5, "reward_low_FN_rate", NO_PROBATION)[0] == -4.0


def test_the_probationary_period_is_not_scored():
    # 20 rows: rows 0..2 are probationary; window [10, 13]
    raw, counts = score_file(hits(20, [0, 1, 2]), [(10, 13)], 0.5, "standard")
    assert raw == -1.0
    assert sum(counts.values()) == 17 and counts["fp"] == 0
    raw, counts = score_file(hits(20, [3]), [(10, 13)], 0.5, "standard")
    assert raw == pytest.approx(-0.11 - 1.0, abs=1e-12) and counts["fp"] == 1


def test_normalisation_sends_null_to_0_and_perfect_to_100():
    n, windows = 400, [[(100, 113), (250, 259)], [(200, 224)]]  # long enough that flagging every row is worse
    starts = [hits(n, [a for a, _ in w]) for w in windows]
    for profile in PROFILES:
        perfect = nab_score(starts, windows, profile)
        assert perfect["score"] == 100.0 and perfect["raw"] == perfect["perfect"] == 3.0
        null = nab_score([np.full(n, 0.5)] * 2, windows, profile)
        assert null["score"] == 0.0 and null["raw"] == null["null"] == -3.0 * PROFILES[profile]["fn"]
    # one of the three windows found at its start, two missed: raw = 1 - 2 = -1, null -3, perfect 3
    half = nab_score([hits(n, [100]), np.zeros(n)], windows, "standard", threshold=0.5)
    assert half["raw"] == -1.0 and half["score"] == pytest.approx(100 * (-1 + 3) / (3 + 3))


def reference_raw(scores: np.ndarray, windows, threshold: float, w: dict, p: float = 0.15) -> float:
    """NAB's rules, row by row, as plainly as possible."""
    start = probation_length(len(scores), p)
    total, found, last = 0.0, set(), None  # last: the last window that ended before the row
    for i in range(start, len(scores)):
        inside = [k for k, (a, b) in enumerate(windows) if a <= i <= b]
        if scores[i] >= threshold:
            if inside:
                k = inside[0]
                a, b = windows[k]
                if k not in found:
                    found.add(k)
                    total += w["tp"] * sig(-(b - i + 1) / (b - a + 1)) / sig(-1.0)
            elif last is None:
                total -= w["fp"]
            else:
                a, b = windows[last]
                y = (i - b) / (b - a) if b > a else 2.0  # a one-row window: NAB's older scorer's convention
                total += w["fp"] * (-1.0 if y > 3 else sig(y))
        if inside and windows[inside[0]][1] == i:
            last = inside[0]
    scored = {k for k, (a, b) in enumerate(windows) if b >= start}
    return total - w["fn"] * len(scored - found)


def test_sweep_matches_brute_force_over_every_threshold():
    rng = np.random.default_rng(0)
    scores = [np.round(rng.random(n), 1) for n in (30, 45, 25)]  # rounded: many ties
    windows = [[(8, 11), (20, 26)], [(10, 10), (30, 40)], []]  # a one-row window, and a file without any
    for profile, w in PROFILES.items():
        table = sweep(scores, windows, profile)
        thresholds = np.unique(np.concatenate(scores))[::-1]
        assert np.array_equal(table["threshold"], np.concatenate([[np.inf], thresholds]))
        for t, raw, tp in zip(table["threshold"], table["raw"], table["tp"], strict=True):
            by_file = [score_file(s, win, t, profile) for s, win in zip(scores, windows, strict=True)]
            by_hand = [reference_raw(s, win, t, w) for s, win in zip(scores, windows, strict=True)]
            assert raw == pytest.approx(sum(r for r, _ in by_file), abs=1e-12)
            assert raw == pytest.approx(sum(by_hand), abs=1e-12)
            assert tp == sum(c["tp"] for _, c in by_file)
        best_t, best_raw, _ = optimize_threshold(scores, windows, profile)
        brute = max(sum(reference_raw(s, win, t, w) for s, win in zip(scores, windows, strict=True))
                    for t in np.concatenate([[np.inf], thresholds]))
        assert best_raw == pytest.approx(brute, abs=1e-12)
        assert best_t == table["threshold"][int(np.argmax(table["raw"]))]


def test_ties_in_the_optimum_go_to_the_highest_threshold():
    # false positives free: thresholds 1.0, 0.8 and 0.0 all find the window at its start (raw 1)
    scores = hits(10, [4])
    scores[1] = 0.8
    threshold, raw, counts = optimize_threshold([scores], [[(4, 7)]], {"tp": 1.0, "fp": 0.0, "fn": 1.0},
                                                NO_PROBATION)
    assert (threshold, raw, counts["fp"]) == (1.0, 1.0, 0)


def test_bad_windows_and_profiles_are_refused():
    with pytest.raises(DataError, match="window 1 = \\[5, 6\\] starts at or before the end of window 0"):
        score_file(np.zeros(10), [(2, 5), (5, 6)], 0.5)
    with pytest.raises(DataError, match="window 0 = \\[8, 12\\] is not an index range inside the 10 rows"):
        score_file(np.zeros(10), [(8, 12)], 0.5)
    with pytest.raises(DataError, match="profile 'strict' is unknown"):
        score_file(np.zeros(10), [], 0.5, "strict")


def test_normalisation_reproduces_the_published_numenta_scores():
    # Raw corpus scores of "numenta" from config/thresholds.json (numenta/NAB at ea702d75); null -116 / -232 (its
    # "null" entries, 116 windows missed) and perfect 116 windows x tpWeight 1.
    raw = {"standard": 46.634450197137596, "reward_low_FP_rate": 30.431072517124093,
           "reward_low_FN_rate": 26.634450197137568}
    null = {"standard": -116.0, "reward_low_FP_rate": -116.0, "reward_low_FN_rate": -232.0}
    for profile in PROFILES:
        assert normalized_score(raw[profile], null[profile], 116.0) == pytest.approx(
            PUBLISHED_SCOREBOARD["numenta"][profile], abs=1e-9)


# --- the corpus reader ---

def write_corpus(root: Path, files: dict[str, list[str]], windows: dict[str, list]) -> Path:
    for name, stamps in files.items():
        path = root / "data" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("timestamp,value\n" + "".join(f"{t},{k}.5\n" for k, t in enumerate(stamps)))
    (root / "labels").mkdir(exist_ok=True)
    (root / "labels" / "combined_windows.json").write_text(json.dumps(windows))
    return root


def minutes(*m: int) -> list[str]:
    return [f"2015-01-01 00:{x:02d}:00" for x in m]


def test_read_nab_turns_window_timestamps_into_inclusive_rows(tmp_path):
    root = write_corpus(tmp_path, {"g/a.csv": minutes(*range(10)), "g/b.csv": minutes(0, 1, 2)},
                        {"g/a.csv": [["2015-01-01 00:02:00.000000", "2015-01-01 00:04:00.000000"],
                                     ["2015-01-01 00:07:00", "2015-01-01 00:07:00"]], "g/b.csv": []})
    a, b = read_nab(root)
    assert (a.name, a.windows, b.name, b.windows) == ("g/a.csv", ((2, 4), (7, 7)), "g/b.csv", ())
    assert a.values[3] == 3.5 and a.timestamps[4] == np.datetime64("2015-01-01T00:04")


def test_read_nab_errors_name_the_problem(tmp_path):
    with pytest.raises(DataError, match="NAB corpus not found: .*nowhere/data is not a folder"):
        read_nab(tmp_path / "nowhere")
    root = write_corpus(tmp_path / "c1", {"g/a.csv": minutes(0, 1)}, {"g/a.csv": [], "g/gone.csv": []})
    with pytest.raises(DataError, match="lists g/gone.csv, but .*gone.csv does not exist"):
        read_nab(root)
    root = write_corpus(tmp_path / "c2", {"g/a.csv": minutes(0, 1, 1, 2)}, {"g/a.csv": []})
    assert len(read_nab(root)[0].values) == 4  # NAB's own corpus repeats timestamps; kept in file order
    with pytest.raises(DataError, match="g/a.csv, line 4: timestamp 2015-01-01T00:01:00.000000 repeats"):
        read_nab(root, strict=True)
    root = write_corpus(tmp_path / "c3", {"g/a.csv": minutes(0, 5, 3)}, {"g/a.csv": []})
    with pytest.raises(DataError, match="g/a.csv, line 4: timestamp .*00:03:00.000000 comes before"):
        read_nab(root, strict=True)
    root = write_corpus(tmp_path / "c4", {"g/a.csv": minutes(0, 1, 2)},
                        {"g/a.csv": [["2015-01-01 00:01:00", "2015-01-01 00:09:00"]]})
    with pytest.raises(DataError, match="g/a.csv: window 0 timestamp 2015-01-01T00:09:00.000000 is not a row"):
        read_nab(root)
    root = write_corpus(tmp_path / "c5", {"g/a.csv": minutes(0, 1, 1, 2)},
                        {"g/a.csv": [["2015-01-01 00:01:00", "2015-01-01 00:02:00"]]})
    with pytest.raises(DataError, match="window 0 timestamp .*00:01:00.000000 is on 2 rows \\(lines 3, 4\\)"):
        read_nab(root)


# --- the real corpus ---

NAB_ROOT = Path(os.environ.get("AEKIT_DATA") or "/work/shared/datasets") / "nab"


@pytest.fixture(scope="module")
def corpus():
    if not NAB_ROOT.is_dir():
        pytest.skip(f"NAB corpus not found at {NAB_ROOT}; set AEKIT_DATA")
    return read_nab(NAB_ROOT)


def test_real_corpus_perfect_is_100_and_null_is_0(corpus):
    assert len(corpus) == 58
    windows = [f.windows for f in corpus]
    assert sum(len(w) for w in windows) == 116
    starts = [hits(len(f.values), [a for a, _ in f.windows]) for f in corpus]
    null_raw = {"standard": -116.0, "reward_low_FP_rate": -116.0, "reward_low_FN_rate": -232.0}  # thresholds.json
    for profile, result in nab_scores(starts, windows).items():
        assert result["score"] == 100.0 and result["perfect"] == 116.0
        assert result["null"] == null_raw[profile]
    for profile, result in nab_scores([np.full(len(f.values), 0.5) for f in corpus], windows).items():
        assert result["score"] == 0.0 and result["raw"] == null_raw[profile]


def test_real_corpus_random_detector_scores_near_nabs_random(corpus):
    # NAB's random detector scores 7.95..16.83 (standard), -1.56..2.14 (low FP), 11.34..23.68 (low FN) over seeds
    rng = np.random.default_rng(0)
    results = nab_scores([rng.random(len(f.values)) for f in corpus], [f.windows for f in corpus])
    for profile, (low, high) in {"standard": (0, 30), "reward_low_FP_rate": (-5, 10),
                                 "reward_low_FN_rate": (5, 40)}.items():
        assert low < results[profile]["score"] < high
        assert 0.9 < results[profile]["threshold"] <= 1.0 or results[profile]["threshold"] == np.inf
