"""The shared scores: MEGC interval matching and P/R/F1, UF1/UAR and confusion matrices, by hand."""
import numpy as np
import pytest

from realtime_me.describe import to_json
from realtime_me.metrics import (Match, au_scores, confusion, interval, iou, match, match_intervals, matched_micro,
                                 prf, score, uf1_uar)
from realtime_me.types import Event, Window


def _event(on, ap, off, kind="micro"):
    return Event(Window(on, ap, off, on / 30, ap / 30, off / 30, kind), emotion="positive")


# ------------------------------------------------------------------ MEGC matching
def test_iou_of_inclusive_frame_intervals():
    assert iou((0, 9), (0, 9)) == 1.0
    assert iou((0, 9), (10, 19)) == 0.0                  # touching, not overlapping
    assert iou((0, 9), (50, 60)) == 0.0                  # far apart
    assert iou((0, 9), (5, 14)) == pytest.approx(5 / 15)
    assert iou((3, 3), (3, 3)) == 1.0                    # one frame each
    assert iou((0, 9), (9, 9)) == pytest.approx(1 / 10)
    assert iou((2, 11), (0, 9)) == iou((0, 9), (2, 11))  # symmetric


def test_exactly_half_iou_is_a_match_and_just_below_is_not():
    assert iou((0, 9), (0, 4)) == 0.5 and iou((0, 2), (1, 3)) == 0.5
    assert match([(0, 4)], [(0, 9)]).tp == 1
    assert match([(1, 3)], [(0, 2)]).tp == 1
    assert iou((0, 10), (0, 4)) < 0.5 and match([(0, 4)], [(0, 10)]).tp == 0


def test_empty_sides():
    assert match([], []) == Match(0, 0, 0, [])
    assert match([], [(0, 9), (20, 29)]) == Match(0, 0, 2, [])
    m = match([(0, 9)], [])
    assert m == Match(0, 1, 0, []) and m.unmatched_pred == {0}
    assert match_intervals([], [(0, 9)]) == [] and match_intervals([(0, 9)], []) == []


def test_no_overlap_counts_every_interval():
    m = match([(0, 9), (40, 49)], [(10, 19), (60, 69), (80, 89)])
    assert (m.tp, m.fp, m.fn) == (0, 2, 3) and m.unmatched_pred == {0, 1}
    assert prf(m.tp, m.fp, m.fn) == {"tp": 0, "fp": 2, "fn": 3, "precision": 0.0, "recall": 0.0, "f1": 0.0}


def test_double_matches_count_once():
    # two predictions on one truth: the better one matches, the other is a false positive
    m = match([(1, 9), (0, 10)], [(0, 10)])
    assert (m.tp, m.fp, m.fn) == (1, 1, 0) and m.pairs == [(1, 0, 1.0)] and m.unmatched_pred == {0}
    # the same prediction twice: still one match
    assert (lambda m: (m.tp, m.fp))(match([(0, 9), (0, 9)], [(0, 9)])) == (1, 1)
    # one prediction at exactly IoU 0.5 with each of two truths: it takes only one of them
    m = match([(0, 19)], [(0, 9), (10, 19)])
    assert (m.tp, m.fp, m.fn) == (1, 0, 1)
    # ... and leaves the other truth to a prediction of its own
    m = match([(0, 19), (0, 9)], [(0, 9), (10, 19)])
    assert (m.tp, m.fp, m.fn) == (2, 0, 0)
    # greedy by IoU: each truth gets its own best prediction
    m = match([(0, 9), (10, 19)], [(10, 18), (0, 8)])
    assert sorted(m.pairs) == [(0, 1, 0.9), (1, 0, 0.9)]
    assert match_intervals([(10, 18), (0, 8)], [(0, 9), (10, 19)]) == [(0, 1), (1, 0)]


def test_interval_of_windows_events_and_dicts():
    e = _event(3, 5, 9)
    assert interval(e) == interval(e.window) == (3, 9)
    assert interval({"onset_frame": 3.0, "apex_frame": 5, "offset_frame": 9}) == (3, 9)
    assert interval(to_json(e)) == (3, 9)


def test_matched_micro_ignores_macros_on_both_sides():
    truth = [{"kind": "micro", "onset_frame": 0, "offset_frame": 9}, {"kind": "macro", "onset_frame": 20,
                                                                     "offset_frame": 60},
             {"kind": "micro", "onset_frame": 100, "offset_frame": 109}]
    events = [_event(20, 40, 60, "macro"), _event(101, 104, 110), _event(50, 52, 55)]
    t, found, by_truth = matched_micro(truth, events)
    assert [x["onset_frame"] for x in t] == [0, 100] and found == events[1:]
    assert by_truth == {1: events[1]}


def test_prf_edge_cases():
    assert prf(0, 0, 0) == {"tp": 0, "fp": 0, "fn": 0, "precision": 1.0, "recall": 1.0, "f1": 1.0}
    assert prf(0, 0, 3)["precision"] == 0.0 and prf(0, 0, 3)["recall"] == 0.0
    assert prf(0, 4, 0)["precision"] == 0.0 and prf(0, 4, 0)["recall"] == 1.0 and prf(0, 4, 0)["f1"] == 0.0
    r = prf(1, 2, 0)
    assert (r["precision"], r["recall"], r["f1"]) == (0.3333, 1.0, 0.5)


# ------------------------------------------------------------------ recognition
def test_confusion_rows_are_truth_columns_predictions():
    assert confusion([0, 1, 1], [1, 1, 0], 2).tolist() == [[0, 1], [1, 1]]
    assert confusion([], [], 2).tolist() == [[0, 0], [0, 0]]


def test_uf1_with_a_class_missing_from_the_truth_averages_the_present_ones():
    # class 2 never occurs in the truth but is predicted once: its row is left out of the means,
    # and the wrong prediction still costs class 0 its recall and F1
    f1, uar = uf1_uar(confusion([0, 0, 1], [0, 2, 1], 3))
    assert f1 == pytest.approx((2 / 3 + 1) / 2) and uar == pytest.approx((0.5 + 1) / 2)
    # a class in the truth that is never predicted scores F1 0 and recall 0
    f1, uar = uf1_uar(confusion([0, 1, 1], [0, 0, 0], 2))
    assert f1 == pytest.approx((2 * 1 / (1 + 3) + 0) / 2) and uar == pytest.approx(0.5)


def test_score_per_dataset_counts_and_missing_classes():
    r = score(np.array([0, 0, 1, 1]), np.array([0, 0, 1, 0]), np.array(["b", "b", "a", "a"]), ("x", "y", "z"))
    assert list(r["per_dataset"]) == ["a", "b"] and r["class_names"] == ["x", "y", "z"]
    assert r["per_dataset"]["b"] == {"uf1": 1.0, "uar": 1.0, "n": 2, "confusion": [[2, 0, 0], [0, 0, 0], [0, 0, 0]]}
    assert r["per_dataset"]["a"]["uar"] == 0.5 and r["overall"]["n"] == 4


def test_au_scores_count_coded_rows_only():
    au_true = np.array([[1, 0], [1, 1], [0, 1]], np.float32)
    prob = np.array([[0.9, 0.8], [0.2, 0.7], [0.9, 0.9]], np.float32)
    r = au_scores(au_true, np.array([1, 1, 0], np.float32), prob, ("AU1", "AU2"))
    assert (r["n_samples"], r["coded"], r["found"], r["reported"]) == (2, 3, 2, 3)
    assert r["recall"] == 0.6667 and r["precision"] == 0.6667
    none = au_scores(au_true, np.zeros(3, np.float32), prob, ("AU1", "AU2"))
    assert (none["coded"], none["recall"], none["precision"]) == (0, 0.0, 0.0)


def test_match_counts_tp_fp_fn_by_the_half_iou_rule():
    pred = [(0, 9), (20, 29), (50, 55)]
    truth = [(2, 11), (22, 40), (100, 110)]
    m = match(pred, truth)
    # (0,9)-(2,11): 8/12 = 0.67 -> TP; (20,29)-(22,40): 8/21 = 0.38 -> not; the rest overlap nothing
    assert (m.tp, m.fp, m.fn) == (1, 2, 2)
    assert m.pairs == [(0, 0, pytest.approx(8 / 12))]
    assert m.unmatched_pred == {1, 2}
    r = prf(m.tp, m.fp, m.fn)
    assert (r["precision"], r["recall"], r["f1"]) == (pytest.approx(1 / 3, abs=1e-4),) * 3
    assert match_intervals(truth, pred) == [(0, 0)]          # (truth index, found index)
    assert match_intervals([(100, 110), (0, 9)], [(2, 11)]) == [(1, 0)]


def test_match_is_one_to_one():
    # two predictions on one truth: only the better one counts, the other is a false positive
    m = match([(0, 10), (1, 9)], [(0, 10)])
    assert (m.tp, m.fp, m.fn) == (1, 1, 0) and m.pairs[0][0] == 0
    # one prediction spanning two truths reaches 0.5 with neither
    m = match([(0, 21)], [(0, 9), (12, 21)])
    assert (m.tp, m.fp, m.fn) == (0, 1, 2)
