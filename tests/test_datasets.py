"""Each dataset adapter on a tiny directory laid out like the official release (real files from
../shared/data, copied or linked), plus the re-encoded layout of ../shared/data itself."""

from __future__ import annotations

import os
import zipfile
from pathlib import Path

import numpy as np
import pytest

from edge_emotion.errors import InputError
from edge_emotion.eval.datasets import DatasetLayoutError, get_dataset
from edge_emotion.eval.iemocap import parse_evaluation, speaker_of


def _link(src: Path, dst: Path) -> Path:
    dst.parent.mkdir(parents=True, exist_ok=True)
    os.symlink(src, dst)
    return dst


def _wav_from(src: Path, dst: Path) -> Path:
    import soundfile as sf

    pcm, rate = sf.read(str(src), dtype="int16")
    dst.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(dst), pcm, rate)
    return dst


def test_ravdess_official_layout(shared_data, tmp_path):
    av = shared_data / "ravdess/av/01-01-01-01-01-01-01.mp4"
    _link(av, tmp_path / "Video_Speech_Actor_01/Actor_01/01-01-01-01-01-01-01.mp4")
    _link(av, tmp_path / "Video_Speech_Actor_01/Actor_01/02-01-01-01-01-01-01.mp4")  # video-only: skipped
    for name in ("03-01-05-02-01-01-01", "03-01-08-01-02-02-01"):
        _wav_from(
            shared_data / f"ravdess/audio16k/Actor_01/{name}.flac",
            tmp_path / f"Audio_Speech_Actors_01-24/Actor_01/{name}.wav",
        )
    _link(av, tmp_path / "Audio_Song_Actors_01-24/Actor_01/03-02-03-01-01-01-01.wav")  # song: skipped

    index = get_dataset("ravdess", tmp_path)
    assert [s.label for s in index.samples] == ["neutral"]
    sample = index.samples[0]
    assert sample.speaker == "ravdess-01" and sample.audio_in_video and sample.modality == "av"
    assert index.skipped == {"modality 02": 1}

    audio = get_dataset("ravdess-audio", tmp_path)
    assert [(s.label, s.speaker, s.modality) for s in audio.samples] == [
        ("angry", "ravdess-01", "audio"),
        ("surprised", "ravdess-01", "audio"),
    ]
    assert audio.skipped == {"song (vocal channel 02)": 1}


def test_ravdess_shared_layout(shared_data):
    index = get_dataset("ravdess-audio", shared_data / "ravdess")
    assert len(index) == 1200
    assert len({s.speaker for s in index.samples}) == 20
    assert index.label_counts()["neutral"] == 80 and index.label_counts()["calm"] == 160


def test_crema_d_official_layout(shared_data, tmp_path):
    for stem in ("1001_DFA_ANG_XX", "1001_DFA_HAP_XX"):
        _link(shared_data / f"crema-d/video/{stem}.flv", tmp_path / f"VideoFlash/{stem}.flv")
    _wav_from(shared_data / "crema-d/audio16k/1001_DFA_ANG_XX.wav", tmp_path / "AudioWAV/1001_DFA_ANG_XX.wav")
    _wav_from(shared_data / "crema-d/audio16k/1002_DFA_FEA_XX.wav", tmp_path / "AudioWAV/1002_DFA_FEA_XX.wav")
    (tmp_path / "AudioWAV/readme.wav").write_bytes(b"")  # not a CREMA-D name: skipped

    index = get_dataset("crema-d", tmp_path)
    by_key = {s.key: s for s in index.samples}
    ang, hap = by_key["crema-d/1001_DFA_ANG_XX"], by_key["crema-d/1001_DFA_HAP_XX"]
    assert ang.label == "angry" and ang.audio_path.name == "1001_DFA_ANG_XX.wav" and not ang.audio_in_video
    assert hap.label == "happy" and hap.audio_path is None and hap.audio_in_video  # audio from the flv
    assert {s.speaker for s in index.samples} == {"crema-d-1001"}

    audio = get_dataset("crema-d-audio", tmp_path)
    assert sorted((s.label, s.speaker) for s in audio.samples) == [
        ("angry", "crema-d-1001"),
        ("fearful", "crema-d-1002"),
    ]
    assert audio.skipped == {"file name not ActorID_Sentence_Emotion_Level": 1}


EVALUATION = """% [START_TIME - END_TIME] TURN_NAME EMOTION [V, A, D]

[6.2901 - 8.2357]\tSes01F_impro01_F000\tneu\t[2.5000, 2.5000, 2.5000]
C-E2:\tNeutral;\t()

[10.0100 - 11.3925]\tSes01F_impro01_M001\tfru\t[2.0000, 3.5000, 3.5000]

[14.8872 - 18.0175]\tSes01F_impro01_F002\texc\t[3.0000, 3.0000, 3.0000]

[20.0 - 21.0]\tSes01F_impro01_M003\tang\t[2.0000, 4.0000, 4.0000]
"""


def test_iemocap_official_layout(shared_data, tmp_path):
    session = tmp_path / "IEMOCAP_full_release/Session1"
    (session / "dialog/EmoEvaluation").mkdir(parents=True)
    (session / "dialog/EmoEvaluation/Ses01F_impro01.txt").write_text(EVALUATION)
    _link(shared_data / "crema-d/video/1001_DFA_NEU_XX.flv", session / "dialog/avi/DivX/Ses01F_impro01.avi")
    for turn, src in (("F000", "1001_DFA_NEU_XX"), ("M001", "1001_DFA_ANG_XX"), ("F002", "1001_DFA_HAP_XX")):
        _wav_from(
            shared_data / f"crema-d/audio16k/{src}.wav",
            session / f"sentences/wav/Ses01F_impro01/Ses01F_impro01_{turn}.wav",
        )
    # M003 has no sentence wav: counted as skipped

    assert parse_evaluation(session / "dialog/EmoEvaluation/Ses01F_impro01.txt")[0] == (
        "Ses01F_impro01_F000",
        6.2901,
        8.2357,
        "neu",
    )
    assert speaker_of("Ses01F_impro01_M001") == "Ses01M"
    index = get_dataset("iemocap", tmp_path)
    assert [(s.label, s.speaker, s.start_ms, s.end_ms) for s in index.samples] == [
        ("neu", "Ses01F", 6290, 8236),
        ("fru", "Ses01M", 10010, 11392),
        ("exc", "Ses01F", 14887, 18018),
    ]
    assert all(s.video_path.name == "Ses01F_impro01.avi" and s.modality == "av" for s in index.samples)
    assert index.skipped == {"no sentence wav": 1}
    audio = get_dataset("iemocap-audio", tmp_path)
    assert all(s.video_path is None and s.start_ms == 0 for s in audio.samples) and len(audio) == 3


def test_fer2013_folders_and_zips(shared_data, tmp_path):
    with zipfile.ZipFile(shared_data / "fer2013/public_test.zip") as zf:
        names = [n for n in zf.namelist() if n.endswith(".jpg")]
        picks = [next(n for n in names if n.startswith(e + "/")) for e in ("angry", "fear", "surprise")]
        for name in picks:
            dst = tmp_path / "folders/test" / name
            dst.parent.mkdir(parents=True, exist_ok=True)
            dst.write_bytes(zf.read(name))
        (tmp_path / "zipped").mkdir()
        with zipfile.ZipFile(tmp_path / "zipped/train.zip", "w") as out:
            for name in picks:
                out.writestr(name.replace("PublicTest_", "Training_"), zf.read(name))
    folders = get_dataset("fer2013", tmp_path / "folders")
    assert sorted(s.label for s in folders.samples) == ["angry", "fear", "surprise"]
    assert {s.subset for s in folders.samples} == {"test"}
    zipped = get_dataset("fer2013", tmp_path / "zipped")
    assert {s.subset for s in zipped.samples} == {"train"} and all(s.member for s in zipped.samples)

    from edge_emotion.eval.fer2013 import read_image

    image = read_image(zipped.samples[0])
    assert image.shape == (48, 48) and image.dtype == np.uint8


@pytest.mark.parametrize("name", ["ravdess", "ravdess-audio", "crema-d", "crema-d-audio", "iemocap", "fer2013"])
def test_a_wrong_layout_says_what_was_expected(tmp_path, name):
    (tmp_path / "notes.txt").write_text("nothing here")
    with pytest.raises(DatasetLayoutError, match="expected"):
        get_dataset(name, tmp_path)


def test_unknown_dataset_and_missing_root(tmp_path):
    with pytest.raises(InputError, match="unknown dataset"):
        get_dataset("affectnet", tmp_path)
    with pytest.raises(DatasetLayoutError, match="not a directory"):
        get_dataset("ravdess", tmp_path / "absent")
