"""tools/detect_every_report.py: the comparison of detect_every values on real clips."""

from __future__ import annotations

import json
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT / "tools"))

import detect_every_report  # noqa: E402


def test_report_compares_each_value_with_every_frame_on_a_real_clip(crema_flv, sample_clip, tmp_path, capsys):
    out = tmp_path / "report.json"
    # no data folder: only the clips given (the real CREMA-D clip, the package's sample)
    detect_every_report.main(
        ["--data", str(tmp_path / "none"), "--clip", str(crema_flv), "--clip", str(sample_clip), "--every", "3"]
        + ["--hop-ms", "500", "--json", str(out)]
    )
    report = json.loads(out.read_text())
    assert set(report["clips"]) == {crema_flv.name, sample_clip.name}
    for clip in report["clips"].values():
        assert set(clip) == {"max_faces", "1", "3"}
        every = clip["1"]
        assert every["results"] > 0 and every["unmatched"] == 0
        assert every["same_label"] == every["same_speaking"] == every["results"] and every["max_abs_dp"] == 0
        third = clip["3"]
        assert third["results"] == every["results"] and 0 <= third["same_label"] <= third["results"]
        assert 0 <= third["max_abs_dp"] <= 1 and third["cpu_s"] > 0
    printed = capsys.readouterr().out
    assert "| N | results | same label % |" in printed


def test_compare_matches_results_by_window_and_person():
    from edge_emotion.results import EmotionResult

    def result(start, person, label, p):
        scores = {"happy": p, "sad": 1 - p}
        return EmotionResult(start, start + 3000, label, scores, ("video",), person=person)

    ref = [result(0, 0, "happy", 0.9), result(0, 1, "sad", 0.2), result(1000, 0, "happy", 0.8)]
    other = [result(0, 1, "happy", 0.6), result(0, 0, "happy", 0.85), result(2000, 0, "sad", 0.1)]
    row = detect_every_report._compare(ref, other)
    assert row["results"] == 2 and row["unmatched"] == 2 and row["same_label"] == 1
    assert abs(row["max_abs_dp"] - 0.4) < 1e-9
