"""Nothing is sent anywhere and nothing is written that the user did not name: ``edge-emotion run``
on a real clip under strace, with an empty HOME, finds no connection to another machine, no DNS
query, and no file created or written (edge_emotion/_offline.py says which libraries would)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from extras import needs_mediapipe

REPO_ROOT = Path(__file__).resolve().parents[1]
CLIP = Path("crema-d") / "video" / "1001_DFA_ANG_XX.flv"

_INET = re.compile(
    r"sa_family=AF_INET6?, sin6?_port=htons\((\d+)\),.*?"
    r"(?:inet_addr\(\"([^\"]+)\"\)|inet_pton\(AF_INET6, \"([^\"]+)\")"
)
_CALL = re.compile(r"^(\d+)\s+(\w+)\((.*)\)\s+=\s+(-?\d+)")
_PATH = re.compile(r"\"((?:[^\"\\]|\\.)*)\"")
#: The system calls strace records (-f: the decoder process's too).
_TRACED = "trace=network,openat,creat,rename,mkdir,link,linkat"
#: Where writing is part of running at all: the null device and terminals.
_ALLOWED_WRITES = ("/dev/null", "/dev/tty", "/dev/pts/")


def _loopback(address: str) -> bool:
    return address.startswith("127.") or address in ("::1", "::ffff:127.0.0.1")


def _network_violations(lines: list[str]) -> list[str]:
    """connect/sendto/sendmsg lines that reach another machine, or any DNS (port 53) traffic."""
    bad = []
    for line in lines:
        call = _CALL.match(line)
        if not call or call.group(2) not in ("connect", "sendto", "sendmsg", "sendmmsg"):
            continue
        for port, ipv4, ipv6 in _INET.findall(line):
            address = ipv4 or ipv6
            if port == "53" or not _loopback(address):
                bad.append(line)
    return bad


def _write_violations(lines: list[str], allowed: tuple[str, ...]) -> list[str]:
    """Files or folders created, opened for writing or renamed, outside ``allowed`` prefixes. A file
    opened with ``O_TMPFILE`` has no name and is gone when closed (the decoder process's picture
    buffer, edge_emotion/sources/decoder.py): it is not a file written, unless it is linked."""
    bad = []
    for line in lines:
        call = _CALL.match(line)
        if not call or int(call.group(4)) < 0:
            continue
        name, args = call.group(2), call.group(3)
        writes = name in ("creat", "mkdir", "mkdirat", "rename", "renameat", "renameat2", "link", "linkat") or (
            name in ("open", "openat") and re.search(r"O_WRONLY|O_RDWR|O_CREAT", args) and "O_TMPFILE" not in args
        )
        if not writes:
            continue
        paths = _PATH.findall(args)
        if not paths or not all(path.startswith(allowed) for path in paths):
            bad.append(line)
    return bad


def test_network_and_write_checks_catch_what_they_look_for():
    """The trace parsing itself: a DNS query, a remote connect and a write into HOME are caught."""
    trace = [
        '7 connect(11, {sa_family=AF_INET, sin_port=htons(53), sin_addr=inet_addr("10.0.0.53")}, 16) = 0',
        '7 connect(6, {sa_family=AF_INET, sin_port=htons(443), sin_addr=inet_addr("142.250.1.1")}, 16) = -1 '
        "EINPROGRESS (Operation now in progress)",
        '7 connect(6, {sa_family=AF_INET, sin_port=htons(9), sin_addr=inet_addr("127.0.0.1")}, 16) = -1 '
        "ECONNREFUSED (Connection refused)",
        '7 openat(AT_FDCWD, "/home/u/.cache/x.db", O_RDWR|O_CREAT|O_CLOEXEC, 0644) = 3',
        '7 openat(AT_FDCWD, "/dev/null", O_WRONLY|O_CLOEXEC) = 3',
        '7 mkdir("/home/u/.config/matplotlib", 0777) = 0',
        '7 openat(AT_FDCWD, "/usr/lib/x.so", O_RDONLY|O_CLOEXEC) = 3',
        '7 openat(AT_FDCWD, "/dev/shm", O_RDWR|O_EXCL|O_NOFOLLOW|O_CLOEXEC|O_TMPFILE, 0600) = 4',
        '7 linkat(AT_FDCWD, "/proc/self/fd/4", AT_FDCWD, "/dev/shm/kept", AT_SYMLINK_FOLLOW) = 0',
    ]
    assert len(_network_violations(trace)) == 2
    assert len(_write_violations(trace, _ALLOWED_WRITES)) == 3  # the unnamed file is not one; linking it is


@pytest.mark.skipif(shutil.which("strace") is None, reason="strace is not installed (apt-get install strace)")
@pytest.mark.parametrize("detector", ["auto", pytest.param("mediapipe", marks=needs_mediapipe)])
def test_run_sends_nothing_and_writes_nothing_unasked(shared_data, tmp_path, detector):
    """Also with MediaPipe's own face detector task, which would send a usage record when closed."""
    clip = shared_data / CLIP
    if not clip.is_file():
        pytest.skip(f"{CLIP} is not in the shared data folder")
    home, work = tmp_path / "home", tmp_path / "work"
    home.mkdir()
    work.mkdir()
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.lower().endswith("_proxy") and not key.startswith(("XDG_", "ORT_", "MPLCONFIGDIR"))
    }
    env.update(
        HOME=str(home),
        PYTHONPATH=os.pathsep.join([str(REPO_ROOT), env.get("PYTHONPATH", "")]).rstrip(os.pathsep),
        PYTHONDONTWRITEBYTECODE="1",  # the clone's own .pyc files are not the SDK writing
    )
    trace_path = tmp_path / "trace.txt"
    command = [sys.executable, "-m", "edge_emotion", "run", "--video", str(clip), "--face-detector", detector]
    proc = subprocess.run(
        ["strace", "-f", "-qq", "-o", str(trace_path), "-e", _TRACED, *command],
        cwd=work,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr
    assert "audio+video" in proc.stdout, proc.stdout  # it really ran both modalities
    lines = trace_path.read_text().splitlines()
    assert any(_CALL.match(line) and "openat" in line for line in lines), "strace recorded nothing"
    network = _network_violations(lines)
    assert not network, "network traffic off this machine:\n" + "\n".join(network[:10])
    writes = _write_violations(lines, _ALLOWED_WRITES)
    assert not writes, "files written that the user did not name:\n" + "\n".join(writes[:10])
    assert sorted(p.relative_to(home).as_posix() for p in home.rglob("*")) == []
    assert list(work.iterdir()) == []


@pytest.mark.parametrize("backend", ["openvino", "openvino-export"])
def test_openvino_is_imported_without_its_telemetry(tmp_path, backend):
    """OpenVINO sends a usage event when imported (and NNCF when it quantizes) unless its telemetry
    package fails to import: every path by which the SDK imports it, in a fresh process with an
    empty HOME, looks up no host name."""
    pytest.importorskip("openvino", reason="OpenVINO is not installed (the 'openvino' extra)")
    load = (
        "from edge_emotion.model.engine import BundleModel; from edge_emotion.info import default_bundle_path; "
        "BundleModel.from_bundle(default_bundle_path(), format='openvino')"
        if backend == "openvino"
        else "from edge_emotion.export.openvino_export import _import; _import('openvino', 'x'); _import('nncf', 'x')"
    )
    script = (  # the telemetry sends from a forked process: the lookup is printed where it happens
        "import socket\n"
        "real = socket.getaddrinfo\n"
        "socket.getaddrinfo = lambda *a, **k: print('LOOKUP', a[0], flush=True) or real(*a, **k)\n"
        f"{load}\n"
        "import openvino, time\n"
        "openvino.Core().available_devices\n"
        "time.sleep(1.0)\n"
        "print('done', flush=True)\n"
    )
    env = {**os.environ, "HOME": str(tmp_path), "PYTHONPATH": str(REPO_ROOT)}
    proc = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "done" in proc.stdout and "LOOKUP" not in proc.stdout, proc.stdout
