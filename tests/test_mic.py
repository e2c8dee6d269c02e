"""The PyAudio microphone path, driven through ALSA's file plugin (no sound card needed).

PortAudio reads ``$HOME/.asoundrc`` when it initialises, so each case runs in a subprocess whose
HOME is a temporary folder whose ``.asoundrc`` makes a raw PCM file ALSA's default capture device.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from edge_emotion.errors import MissingDependencyError
from edge_emotion.sources import MicrophoneSource, read_audio

ASOUNDRC = """pcm.!default {{ type plug; slave.pcm "vmic" }}
pcm.vmic {{ type file; slave.pcm "null"; file "/dev/null"; infile "{infile}"; format "raw" }}
"""


def run_with_home(home, code: str, timeout_s: float = 60) -> subprocess.CompletedProcess:
    env = dict(os.environ, HOME=str(home))
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], env=env, capture_output=True, text=True, timeout=timeout_s
    )


@pytest.fixture
def pyaudio_available():
    pytest.importorskip("pyaudio", reason="pyaudio is not installed (pip install 'edge-emotion[mic]')")


@pytest.fixture
def virtual_mic(tmp_path, sample_clip, pyaudio_available):
    """A HOME whose ALSA default capture device plays the sample clip's speech (16 kHz s16le)."""
    pcm, _ = read_audio(sample_clip, 16000)
    raw = np.clip(np.round(pcm * 32768), -32768, 32767).astype("<i2")
    infile = tmp_path / "speech_s16le.raw"
    raw.tofile(infile)
    (tmp_path / ".asoundrc").write_text(ASOUNDRC.format(infile=infile))
    return tmp_path, raw.astype(np.float32) / 32768


def test_microphone_reads_the_device_through_the_ring_buffer(virtual_mic):
    home, expected = virtual_mic
    out = home / "captured.npz"
    result = run_with_home(
        home,
        f"""
        import numpy as np
        from edge_emotion.sources import MicrophoneSource
        with MicrophoneSource("default", sample_rate=16000, chunk_ms=100) as mic:
            chunks = []
            for chunk in mic:
                chunks.append(chunk)
                if len(chunks) == 15:
                    break
        np.savez({str(out)!r}, pcm=np.concatenate([c.pcm for c in chunks]),
                 ts=np.array([c.timestamp_ms for c in chunks]), sizes=np.array([c.pcm.size for c in chunks]),
                 rates=np.array([c.sample_rate for c in chunks]))
        print(mic.device_name, mic.capture_rate)
        """,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    got = np.load(out)
    assert np.all(got["sizes"] == 1600) and np.all(got["rates"] == 16000)
    ts = got["ts"]
    assert np.all(np.diff(ts) > 0)
    # Stamped by counting samples from the first block's capture time: exactly 100 ms apart.
    np.testing.assert_allclose(np.diff(ts), 100, atol=1)
    assert 0 <= ts[0] < 5000  # ms since the source opened
    # The samples are the device's, in order, scaled from int16.
    n = min(got["pcm"].size, expected.size)
    np.testing.assert_allclose(got["pcm"][:n], expected[:n], atol=1e-6)


def test_unknown_microphone_raises_device_error_naming_it(virtual_mic):
    home, _ = virtual_mic
    result = run_with_home(
        home,
        """
        from edge_emotion.errors import DeviceError
        from edge_emotion.sources import MicrophoneSource
        for device in ("no-such-microphone", 97):
            try:
                MicrophoneSource(device)
            except DeviceError as exc:
                print("DeviceError:", exc)
        """,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    lines = [line for line in result.stdout.splitlines() if line.startswith("DeviceError:")]
    assert len(lines) == 2
    assert "'no-such-microphone'" in lines[0] and "input devices:" in lines[0]
    assert "97" in lines[1]


def test_no_capture_device_raises_device_error(tmp_path, pyaudio_available):
    """A HOME without .asoundrc: on a machine with no sound card there is no capture device."""
    result = run_with_home(
        tmp_path,
        """
        import json
        from edge_emotion.errors import DeviceError
        from edge_emotion.sources import MicrophoneSource
        try:
            with MicrophoneSource("default") as mic:
                next(iter(mic))
            print(json.dumps({"error": None}))
        except DeviceError as exc:
            print(json.dumps({"error": str(exc)}))
        """,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    error = json.loads(result.stdout.strip().splitlines()[-1])["error"]
    if error is None:
        pytest.skip("this machine has a capture device, so the no-device error cannot be provoked")
    assert "microphone 'default'" in error


def test_missing_pyaudio_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "pyaudio", None)  # makes `import pyaudio` fail
    with pytest.raises(MissingDependencyError, match=r"edge-emotion\[mic\]"):
        MicrophoneSource("default")
