"""One event renderer: the console line, JSONL object and web table say the same things."""
from realtime_me import describe
from realtime_me.types import Event, Window


def _event(kind="micro"):
    w = Window(100, 110, 130, 1.0, 1.05, 1.15, kind, 2.0, 1.6,
               regions={"mouth_r": 0.9, "mouth_l": 0.8, "brow_l": 0.2},
               cues={"lip_corner_up": 0.03, "eye_aperture": -0.2, "brow_raise": 0.0})
    return Event(w, "positive", 0.84, {"negative": 0.1, "positive": 0.84, "surprise": 0.06}, {"AU12": 0.9, "AU6": 0.6},
                 latency_s=0.4)


def test_moved_regions_follow_the_dominance_rule_and_cues_skip_the_aperture():
    e = _event()
    assert describe.moved(e.window) == ["mouth_r", "mouth_l"]          # brow_l < half the strongest
    assert describe.cue_names(e.window) == ["lip_corner_up"]
    assert describe.top_aus(e) == ["AU12", "AU6"]


def test_every_output_carries_the_same_sentence():
    e = _event()
    s = describe.sentence(e)
    assert "AU12" in s and s.endswith("positive 84%") and "50 ms" in s and "150 ms long" in s
    d = describe.to_json(e)
    assert d["explanation"] == s and d["moved"] == ["mouth_r", "mouth_l"] and d["cues"]["lip_corner_up"] == 0.03
    assert d["spotting_delay_s"] == 0.55 and d["decision_latency_s"] == 0.4 and d["near_blink"] is False
    assert s in describe.console_line(e) and "AUs AU12,AU6" in describe.console_line(e)
    row = describe.table_row(e)
    assert len(row) == len(describe.TABLE_HEADERS) and row[-1] == s and row[6] == "mouth_r, mouth_l"


def test_macros_and_unclassified_events_get_no_emotion_sentence():
    e = Event(_event("macro").window)
    assert "unclassified" in describe.console_line(e) and describe.sentence(e).endswith("unclassified")
    assert describe.table_row(e)[-1] == "" and "\n" not in describe.console_line(e)
    assert describe.au_text(e) == "lip corner up"            # no classifier AUs: the spotter's cues
