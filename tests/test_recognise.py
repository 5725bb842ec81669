"""``realtime-me recognise``: apex finder, sentence, sample lists, real clips end to end, bad input."""
from __future__ import annotations

import csv
import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from realtime_me.alignment import template
from realtime_me.cli import main
from realtime_me.datasets import read_samples
from realtime_me.errors import UserError
from realtime_me.explain import explain
from realtime_me.recognise import find_apex, moved_regions, pad, tracking_border
from realtime_me.spotting.regions import REGIONS

LABELS = ("negative", "positive", "surprise")


# ------------------------------------------------------------------ explain (pure)
def test_sentence_names_both_sides_timing_and_emotion():
    probs = {"negative": 0.06, "positive": 0.89, "surprise": 0.05}
    s = explain(["mouth_l", "mouth_r"], {"AU12": 0.8}, "positive", probs, apex_s=0.12, duration_s=0.19)
    assert s == "left and right lip corners pulled up (AU12), apex at 120 ms, 190 ms long: positive 89%"


def test_sentence_one_side_pairs_au1_au2_and_names_unexplained_regions():
    s = explain(["brow_r", "chin"], {"AU2": 0.7, "AU1": 0.8}, "surprise", {"surprise": 0.95}, 0.17, 0.37)
    assert s.startswith("right brow raised (AU1+AU2), chin moved, apex at 170 ms, 370 ms long")
    assert s.endswith(": surprise 95%")


def test_sentence_without_aus_or_movement_or_class():
    assert explain(["brow_l", "brow_r", "mouth_r"], {}, None, {}, None, 0.2) == \
        "left and right brows and right lip corner moved, 200 ms long: unclassified"
    assert explain([], {}, "negative", {"negative": 0.5}) == "no clear movement: negative 50%"


def test_sentence_strongest_aus_first_at_most_three():
    s = explain(["glabella"], {"AU4": 0.9, "AU7": 0.95, "AU10": 0.6, "AU17": 0.55}, "negative", {"negative": 0.7})
    assert s.index("(AU7)") < s.index("(AU4)") < s.index("(AU10)") and "AU17" not in s


# ------------------------------------------------------------------ apex finder (synthetic, known answer)
def _synthetic_clip(n=60, apex=23, fps=100.0, seed=0):
    """Template face, lip corners pulled up 2 px (about 0.018 IOD) in a bump peaking at
    ``apex``, under head motion ten times larger that grows to the last frame."""
    rng = np.random.default_rng(seed)
    base = template().astype(np.float64)
    corners = list(REGIONS["mouth_l"] + REGIONS["mouth_r"])
    centre = base.mean(0)
    pts = np.zeros((n, 478, 3), np.float32)
    t = np.arange(n)
    bump = 2.0 * np.exp(-0.5 * ((t - apex) / (0.05 * fps)) ** 2)
    for i in range(n):
        face = base.copy()
        face[corners, 1] -= bump[i]
        a, s, shift = 0.08 * i / n, 1 + 0.12 * i / n, np.array([25.0, -15.0]) * i / n
        rot = s * np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])
        face = (face - centre) @ rot.T + centre + shift + rng.normal(0, 0.05, face.shape)
        pts[i, :, :2] = face
    return pts


def test_apex_finder_finds_the_bump_through_head_motion():
    pts = _synthetic_clip()
    raw = np.abs(pts[:, :, :2] - pts[0, :, :2]).mean(axis=(1, 2))
    assert int(np.argmax(raw)) == len(pts) - 1      # without head-motion removal the last frame would win
    fit = find_apex(pts, fps=100.0)
    assert abs(fit.apex - 23) <= 1
    assert set(moved_regions(fit, fit.apex)) == {"mouth_l", "mouth_r"}
    assert fit.score[0] == pytest.approx(0.0, abs=2e-3) and fit.score[fit.apex] > 5 * np.nanmedian(fit.score[45:])


def test_apex_finder_skips_frames_without_face_and_honours_the_range():
    pts = _synthetic_clip()
    pts[[22, 23, 24]] = np.nan                      # the face is lost exactly at the apex
    fit = find_apex(pts, fps=100.0)
    assert fit.apex in (21, 25) and np.isnan(fit.score[23])
    assert find_apex(pts, fps=100.0, lo=40).apex >= 40
    with pytest.raises(ValueError):
        find_apex(pts, fps=100.0, ref=23)           # no face to measure from


def test_apex_finder_does_not_put_the_apex_on_a_blink():
    """A blink inside the sample (the lids move far more than the ME): with the face mesh's
    eye aperture showing it, the apex is the ME's; without, the blink's."""
    pts = _synthetic_clip(n=80, apex=60)
    lids = list(REGIONS["eye_l"] + REGIONS["eye_r"])
    t = np.arange(len(pts))
    closing = np.exp(-0.5 * ((t - 25) / 3.0) ** 2)
    pts[:, lids, 1] += 6.0 * closing[:, None]
    assert abs(find_apex(pts, fps=100.0).apex - 25) <= 2
    apertures = 0.3 * (1.0 - 0.9 * closing)
    assert abs(find_apex(pts, fps=100.0, apertures=apertures).apex - 60) <= 1


# ------------------------------------------------------------------ sample lists
def test_sample_list_csv_resolves_paths_and_checks_lines(tmp_path):
    (tmp_path / "clipA").mkdir()
    f = tmp_path / "list.csv"
    f.write_text("sample,path,fps,onset,apex,offset,label,aus,dataset\nA,clipA,200,2,,30,positive,6+L12,casme2\n")
    (s,) = read_samples(f)
    assert (s.path, s.fps, s.onset, s.apex, s.offset, s.label, s.aus, s.dataset) == \
        (tmp_path / "clipA", 200.0, 2, None, 30, "positive", ("AU6", "AU12"), "casme2")
    f.write_text("sample,path\nA,clipA\n")
    with pytest.raises(UserError, match="needs its fps"):
        read_samples(f)
    f.write_text("sample,path,fps,apex\nA,clipA,200,x\n")
    with pytest.raises(UserError, match=r"list.csv:2: apex 'x'"):
        read_samples(f)
    f.write_text("sample,fps\nA,200\n")
    with pytest.raises(UserError, match="missing column"):
        read_samples(f)


# ------------------------------------------------------------------ real clips
@pytest.fixture(scope="module")
def realclips(shared_data) -> Path:
    root = shared_data / "realclips"
    if not (root / "clips.json").exists():
        pytest.skip(f"real ME clips not found at {root}")
    return root


def _frames(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in (".jpg", ".bmp", ".png"))


def test_realclips_dataset_end_to_end(realclips, tmp_path, capsys):
    out = {k: tmp_path / f"out.{k}" for k in ("json", "jsonl", "csv")}
    png = tmp_path / "confusion.png"
    rc = main(["recognise", "--dataset", str(realclips / "clips.json"), "--own-apex", "--no-progress",
               "--json", str(out["json"]), "--jsonl", str(out["jsonl"]), "--csv", str(out["csv"]),
               "--confusion", str(png)])
    assert rc == 0
    clips = {c["sample"]: c for c in json.loads((realclips / "clips.json").read_text())}
    summary = json.loads(out["json"].read_text())
    rows = summary["samples"]
    assert [r["sample"] for r in rows] == list(clips) and summary["own_apex"] is True
    for r in rows:
        c = clips[r["sample"]]
        assert (r["onset"], r["offset"], r["label"]) == (c["onset"], c["offset"], c["emotion"])
        assert r["apex_from"] == "motion" and r["apex"] == r["motion_apex"] and c["onset"] < r["apex"] <= c["offset"]
        assert r["coded_apex"] == c["apex"] and r["no_face"] == [] and r["border"] > 0   # tight crops: padded
        assert r["emotion"] in LABELS and abs(sum(r["probs"].values()) - 1) < 1e-3
        assert len(r["motion"]) == c["n_frames"] and r["explanation"].endswith(f"{r['emotion']} {r['confidence']:.0%}")
        if c["apex"] is not None:   # measured: within 40 ms on all five coded clips
            assert abs(r["motion_apex_error_ms"]) <= 50, r
    m = summary["metrics"]
    assert m["overall"]["n"] == 6 and set(m["per_dataset"]) == {"casme2", "samm", "smic"}
    assert m["correct"] >= 5    # measured 5/6; a regression guard, not a tuning target
    assert len(out["jsonl"].read_text().splitlines()) == 6
    assert len(list(csv.DictReader(out["csv"].open()))) == 6
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    text = capsys.readouterr().out
    assert "UF1" in text and "within 30 ms" in text


def test_one_sample_json_with_a_coded_apex(realclips, tmp_path, capsys):
    out = tmp_path / "r.json"
    clip = realclips / "smic_s03_s03_po_05"     # BMP frames, 100 fps
    assert main(["recognise", "--frames", str(clip), "--fps", "100", "--apex", "15", "--json", str(out),
                 "--no-progress"]) == 0
    r = json.loads(out.read_text())
    for key in ("emotion", "probs", "aus", "apex", "onset", "offset", "explanation", "moved", "motion_apex"):
        assert key in r
    assert (r["onset"], r["apex"], r["offset"], r["apex_from"], r["coded_apex"]) == (0, 15, 29, "coded", 15)
    assert r["apex_ms"] == 150.0 and r["duration_ms"] == 290.0 and r["emotion"] in LABELS
    assert set(r["probs"]) == set(LABELS)
    printed = capsys.readouterr().out
    assert r["explanation"] in printed and "apex:" in printed and "moved:" in printed


def test_dataset_csv_of_two_samples_writes_rows_and_metrics(realclips, tmp_path):
    # One folder of gray PNGs (SAMM is gray), one MJPG video of a BMP clip.
    gray = tmp_path / "samm_gray"
    gray.mkdir()
    for p in _frames(realclips / "samm_022_022_3_3"):
        cv2.imwrite(str(gray / (p.stem + ".png")), cv2.imread(str(p), cv2.IMREAD_GRAYSCALE))
    video = tmp_path / "smic.avi"
    w = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"MJPG"), 100, (128, 128))
    for p in _frames(realclips / "smic_s20_s20_sur_01"):
        w.write(cv2.imread(str(p)))
    w.release()
    lst = tmp_path / "two.csv"
    lst.write_text("sample,path,fps,onset,apex,offset,label,dataset\n"
                   "g,samm_gray,200,2,,36,positive,samm\n"
                   "v,smic.avi,,,,,surprise,smic\n")
    out = {k: tmp_path / f"o.{k}" for k in ("json", "jsonl", "csv")}
    assert main(["recognise", "--dataset", str(lst), "--no-progress", "--json", str(out["json"]),
                 "--jsonl", str(out["jsonl"]), "--csv", str(out["csv"])]) == 0
    rows = [json.loads(line) for line in out["jsonl"].read_text().splitlines()]
    assert [r["sample"] for r in rows] == ["g", "v"]
    assert (rows[0]["onset"], rows[0]["offset"], rows[0]["fps"]) == (2, 36, 200.0)
    assert (rows[1]["onset"], rows[1]["offset"], rows[1]["fps"]) == (0, 37, 100.0)
    assert all(r["no_face"] == [] and r["apex_from"] == "motion" for r in rows)
    table = list(csv.DictReader(out["csv"].open()))
    assert [t["sample"] for t in table] == ["g", "v"] and {"p_negative", "p_positive", "p_surprise"} <= set(table[0])
    m = json.loads(out["json"].read_text())["metrics"]
    assert m["overall"]["n"] == 2 and set(m["per_dataset"]) == {"samm", "smic"}
    assert 0.0 <= m["overall"]["uf1"] <= 1.0 and "motion_apex_abs_error_ms" not in m   # no coded apex given


def test_frames_without_face_are_reported_and_the_rest_used(realclips, tmp_path):
    clip = tmp_path / "clip"
    clip.mkdir()
    for i, p in enumerate(_frames(realclips / "smic_s20_s20_sur_01")):
        img = cv2.imread(str(p))
        if i in (5, 6, 7):
            img[:] = 128
        cv2.imwrite(str(clip / f"{i:03d}.bmp"), img)
    out = tmp_path / "r.json"
    assert main(["recognise", "--frames", str(clip), "--fps", "100", "--json", str(out), "--no-progress"]) == 0
    r = json.loads(out.read_text())
    assert r["no_face"] == [5, 6, 7] and r["apex"] not in (5, 6, 7)
    assert [r["motion"][i] for i in (5, 6, 7)] == [None] * 3
    assert any("no face in 3 of 38 frames" in n and "5-7" in n for n in r["notes"])


def test_a_failed_sample_is_a_row_with_its_error(realclips, tmp_path, capsys):
    blank = tmp_path / "blank"
    blank.mkdir()
    for i in range(5):
        cv2.imwrite(str(blank / f"{i}.png"), np.full((128, 128, 3), 90, np.uint8))
    lst = tmp_path / "l.csv"
    lst.write_text(f"sample,path,fps\nok,{realclips / 'smic_s03_s03_po_05'},100\nblank,blank,100\n")
    out = tmp_path / "o.jsonl"
    assert main(["recognise", "--dataset", str(lst), "--jsonl", str(out), "--no-progress"]) == 1
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert "error" not in rows[0] and "no face found in any of the 5 frames" in rows[1]["error"]
    assert "1 of 2 samples failed" in capsys.readouterr().err


def test_tight_crops_are_padded_before_tracking(realclips):
    img = cv2.imread(str(_frames(realclips / "samm_018_018_3_1")[0]))
    tighter = cv2.resize(img[16:112, 16:112], (128, 128))   # face mesh alone finds no face in this one
    border = tracking_border(tighter)
    assert border == 64 and pad(tighter, border).shape == (256, 256, 3)
    canvas = np.full((480, 640, 3), 100, np.uint8)       # the same face small in a large frame: no padding
    canvas[176:304, 256:384] = img
    assert tracking_border(canvas) == 0


# ------------------------------------------------------------------ bad input: exit 2, one line, nothing written
def _refused(capsys, argv, out: Path, *needles: str) -> None:
    rc = main(["recognise", *argv, "--json", str(out), "--no-progress"])
    err = capsys.readouterr().err.strip()
    assert rc == 2, err
    assert err.startswith("realtime-me recognise: error:") and "\n" not in err and "Traceback" not in err
    for n in needles:
        assert n in err, err
    assert not out.exists() and not list(out.parent.glob(f".{out.name}*"))


def _clip(tmp_path: Path, n: int, size=(64, 64), name="clip") -> Path:
    d = tmp_path / name
    d.mkdir()
    for i in range(n):
        cv2.imwrite(str(d / f"{i:03d}.jpg"), np.full((*size, 3), 100 + i, np.uint8))
    return d


def test_positions_out_of_range_are_refused(tmp_path, capsys):
    clip, out = _clip(tmp_path, 5), tmp_path / "r.json"
    _refused(capsys, ["--frames", str(clip), "--fps", "200", "--offset", "5"], out, "offset 5 is out of range",
             "5 frames, positions 0-4")
    _refused(capsys, ["--frames", str(clip), "--fps", "200", "--apex", "0"], out, "apex 0 must lie after onset 0")
    _refused(capsys, ["--frames", str(clip), "--fps", "200", "--onset", "3", "--offset", "2"], out,
             "offset 2 must come after onset 3")
    _refused(capsys, ["--frames", str(clip), "--fps", "200", "--onset", "-1"], out, "positions count from 0")


def test_one_frame_empty_and_non_image_folders_are_refused(tmp_path, capsys):
    out = tmp_path / "r.json"
    _refused(capsys, ["--frames", str(_clip(tmp_path, 1)), "--fps", "200"], out, "holds 1 frame", "at least 2")
    empty = tmp_path / "empty"
    empty.mkdir()
    _refused(capsys, ["--frames", str(empty), "--fps", "200"], out, "no images")
    texts = tmp_path / "texts"
    texts.mkdir()
    for i in range(3):
        (texts / f"{i}.txt").write_text("not a frame")
    _refused(capsys, ["--frames", str(texts), "--fps", "200"], out, "no images")
    fake = tmp_path / "fake"
    fake.mkdir()
    for i in range(3):
        (fake / f"{i}.jpg").write_bytes(b"garbage" * 20)
    _refused(capsys, ["--frames", str(fake), "--fps", "200"], out, str(fake), "read")
    mixed = _clip(tmp_path, 3, name="mixed")
    (mixed / "001.jpg").write_bytes(b"garbage" * 20)
    _refused(capsys, ["--frames", str(mixed), "--fps", "200"], out, "001.jpg: not an image")


def test_frames_of_differing_size_are_refused(tmp_path, capsys):
    clip = _clip(tmp_path, 4)
    cv2.imwrite(str(clip / "002.jpg"), np.full((80, 64, 3), 100, np.uint8))
    _refused(capsys, ["--frames", str(clip), "--fps", "200"], tmp_path / "r.json", "002.jpg is 64x80",
             "must share one size")


def test_unwritable_outputs_and_bad_options_are_refused(tmp_path, capsys):
    clip = _clip(tmp_path, 4)
    blocker = tmp_path / "a_file"
    blocker.write_text("x")
    rc = main(["recognise", "--frames", str(clip), "--fps", "200", "--json", str(blocker / "r.json")])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and "--json" in err and "cannot write there" in err and "\n" not in err
    out = tmp_path / "r.json"
    _refused(capsys, ["--frames", str(clip)], out, "needs its frame rate")
    _refused(capsys, ["--frames", str(clip), "--fps", "200", "--video", "x.mp4"], out, "give one input")
    _refused(capsys, ["--video", str(tmp_path / "nope.mp4")], out, "no such video file")


def test_bad_sample_lists_are_refused_before_any_work(tmp_path, capsys):
    clip, out = _clip(tmp_path, 4), tmp_path / "r.json"
    lst = tmp_path / "l.csv"
    lst.write_text("sample,path,fps,offset\na,clip,200,9\n")
    _refused(capsys, ["--dataset", str(lst)], out, "l.csv:2: sample a", "offset 9 is out of range")
    lst.write_text("sample,path,fps\na,clip,200\nb,missing,200\n")
    _refused(capsys, ["--dataset", str(lst)], out, "l.csv:3", "not found")
    lst.write_text("sample,path,fps,label\na,clip,200,happiness\n")
    _refused(capsys, ["--dataset", str(lst)], out, "label 'happiness' is not one of the model's classes")
    _refused(capsys, ["--dataset", str(lst), "--apex", "3"], out, "--apex", "columns")
    assert clip.exists()
