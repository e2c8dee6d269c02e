"""Media files decoded in a separate process: :class:`DecoderProcess`.

:meth:`~edge_emotion.recognizer.Recognizer.analyze` reads a file a little ahead of the stream, so
that decoding overlaps face detection and the encoders. On a reader *thread* the two halves fight
for Python's GIL: PyAV takes it back between FFmpeg calls and waits up to a switch interval for it
each time the stream's thread holds it (a decoding thread beside a pure-Python loop decoded 2.6
times slower than alone; BENCHMARKS.md §4). A decoder *process* has its own interpreter. It opens
the file with the same sources (:func:`~edge_emotion.sources.open_media`), merges video frames and
audio chunks in timestamp order, converts to RGB the frames the stream will keep (the stream's
:class:`~edge_emotion.frontend.align.FrameSubsampler`, run on the same timestamps) and reads the
luma plane of the frames whose luma the stream will read, and hands them over: pictures through a
small shared buffer of slots, timestamps and audio pickled through a socket pair. The recognizer's
process only copies each picture out of its slot. The frames, pictures and chunks are the ones the
reader thread gives (``tests/test_decoder.py`` compares them, and the results).

The child is a plain ``python`` process that runs this module's :func:`main` with the parent's
``sys.path`` (not ``multiprocessing``'s spawn, which would re-run an application's main module in
it). It tells its parent when it is ready, then serves one file after another until its socket
closes, so a :class:`~edge_emotion.recognizer.Recognizer` starts it once; it ignores Ctrl-C (its
parent closes it) and ends by itself when its parent dies (the socket closes). POSIX only (it passes
a file descriptor over the socket); elsewhere :func:`process_decoding_available` is False and files
are read on a thread.
"""

from __future__ import annotations

import json
import logging
import mmap
import os
import subprocess
import sys
import tempfile
import threading
from collections import deque
from collections.abc import Iterator
from typing import Any

import numpy as np

from ..errors import MediaError
from .frames import AudioChunk, _DeferredFrame

log = logging.getLogger(__name__)

#: Items per message from the child.
BATCH = 8
#: The shared buffer's size is about this many bytes: as many slots of one frame's RGB picture
#: plus its luma plane as fit, at least :data:`MIN_SLOTS` and at most :data:`MAX_SLOTS` (640x480:
#: 40 slots; 1080p: 5). It lives in ``/dev/shm`` where that has room for it, else in the temporary
#: folder (a writing beyond a full ``/dev/shm`` would crash the child).
BUFFER_BYTES = 48 * 1024 * 1024
MIN_SLOTS = 4
MAX_SLOTS = 64
#: How long closing waits for the child to stop a file or to exit before it is killed.
STOP_TIMEOUT_S = 5.0
#: How long the first file waits for the child to have started (imported what it needs).
READY_TIMEOUT_S = 60.0

_READY, _END, _STOP, _DONE = "ready", "end", "stop", "done"
#: The child's command: this module's :func:`main` with the parent's ``sys.path`` (an application that
#: found the package through its own path entries finds it in the child too).
_CHILD = (
    "import json, sys; sys.path[:] = json.loads(sys.argv[1]); "
    "from edge_emotion.sources.decoder import main; main(sys.argv[2:])"
)


def process_decoding_available() -> bool:
    """Whether files can be decoded in a separate process here: on a POSIX system (a file
    descriptor is passed to the child over a socket), from a Python interpreter (a frozen
    application's executable would run the application again, not the child)."""
    return os.name == "posix" and hasattr(__import__("socket"), "AF_UNIX") and not getattr(sys, "frozen", False)


class TransferredFrame(_DeferredFrame):
    """A video frame handed over by a :class:`DecoderProcess`: its RGB ``image`` when the stream
    keeps it (else None), its ``luma`` when the stream reads it (else computed from ``image``).
    Reading the ``image`` of a frame that was not converted raises :class:`RuntimeError`: the
    decoder converts exactly the frames the stream's subsampler keeps. (The two subsamplers see the
    same timestamps: the stream skips a frame only when it comes more than its ``max_lead_ms``
    behind the audio, which merged timestamp order rules out.)"""

    def __init__(self, timestamp_ms: int, size: tuple[int, int], rgb: np.ndarray | None, luma: np.ndarray | None):
        # frozen dataclass parent: attributes are set through object.__setattr__, as dataclasses do
        object.__setattr__(self, "timestamp_ms", int(timestamp_ms))
        object.__setattr__(self, "_rgb", rgb)
        object.__setattr__(self, "_luma", luma)
        object.__setattr__(self, "_size", (int(size[0]), int(size[1])))

    @property
    def image(self) -> np.ndarray:  # type: ignore[override]
        if self._rgb is None:
            raise RuntimeError(
                f"the frame at {self.timestamp_ms} ms was not converted by the decoder process (a frame the "
                "stream's subsampler drops)"
            )
        return self._rgb

    def luma(self) -> np.ndarray:
        if self._luma is None:
            object.__setattr__(self, "_luma", super().luma())  # from the RGB picture (raises without it)
        return self._luma

    def __repr__(self) -> str:
        return f"TransferredFrame({self.width}x{self.height}, timestamp_ms={self.timestamp_ms})"


def merged_items(media, kept=None, convert_ahead_pixels: int | None = None) -> Iterator[tuple[str, Any]]:
    """A :class:`~edge_emotion.sources.MediaFile`'s video frames and audio chunks as ``(kind,
    item)`` in timestamp order (video first on a tie). ``kept``: a frame subsampler (``keep(ms)``);
    the frames it keeps with at most ``convert_ahead_pixels`` pixels (None: any) are converted to
    RGB here. Closing the iterator closes the file."""
    import heapq

    sources = [
        (kind, rank, iter(source))
        for kind, rank, source in (("video", 0, media.video), ("audio", 1, media.audio))
        if source is not None
    ]
    try:
        keyed = [_keyed(iterator, rank, kind) for kind, rank, iterator in sources]
        for _, _, kind, item in heapq.merge(*keyed, key=lambda entry: entry[:2]):
            if kind == "video" and kept is not None and kept.keep(item.timestamp_ms):
                if convert_ahead_pixels is None or item.width * item.height <= convert_ahead_pixels:
                    item.image  # noqa: B018 - converted (and kept) here
            yield kind, item
    finally:
        for _, _, iterator in sources:  # closes the sources' generators, and so the file
            close = getattr(iterator, "close", None)
            if close is not None:
                close()


class _NoBuffer(OSError):
    """No room for the shared buffer: the file is read on a thread instead."""


def _buffer_file(size_bytes: int):
    """An unnamed temporary file of ``size_bytes``, its space reserved (a write into a full
    ``/dev/shm`` would crash the child instead): in ``/dev/shm`` where there is room, else in the
    temporary folder. Raises :class:`_NoBuffer` where neither has room."""
    problems = []
    for directory in ("/dev/shm", None):
        if directory is not None and not os.path.isdir(directory):
            continue
        try:
            handle = tempfile.TemporaryFile(dir=directory)
        except OSError as exc:
            problems.append(f"{directory or tempfile.gettempdir()}: {exc}")
            continue
        try:
            if hasattr(os, "posix_fallocate"):
                os.posix_fallocate(handle.fileno(), 0, size_bytes)
            else:
                handle.truncate(size_bytes)
            return handle
        except OSError as exc:
            handle.close()
            problems.append(f"{directory or tempfile.gettempdir()}: {exc}")
    raise _NoBuffer("; ".join(problems) or "no folder for it")


def _keyed(items: Iterator, rank: int, kind: str) -> Iterator[tuple]:
    for item in items:
        yield item.timestamp_ms, rank, kind, item


class DecoderProcess:
    """A child process that decodes media files for this one, one file at a time (see the module
    docstring). :meth:`read` starts a file; :meth:`close` ends the process. Thread-safe: a
    :meth:`read` while another is in progress raises :class:`RuntimeError` (see :meth:`try_read`).
    Starting does not wait for the child: the first file waits until it is ready; a child that
    ended before it was ready is :attr:`broken` (no file is read through it)."""

    def __init__(self):
        import socket

        if not process_decoding_available():
            raise RuntimeError("decoding in a separate process needs a POSIX system")
        from multiprocessing.connection import Connection

        ours, theirs = socket.socketpair()
        try:
            self._process = subprocess.Popen(
                [sys.executable, "-c", _CHILD, json.dumps(sys.path), str(theirs.fileno())],
                pass_fds=(theirs.fileno(),),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                close_fds=True,
            )
        except BaseException:
            ours.close()
            raise
        finally:
            theirs.close()
        self._socket = ours  # kept to shut down: that wakes a thread waiting in recv
        self._conn = Connection(os.dup(ours.fileno()))
        self.files_read = 0  # files handed to the child so far
        self._lock = threading.Lock()
        self._busy = False
        self._closed = False
        self._ready = False
        self.broken = False  # the child ended (or did not answer) before it was ready

    @property
    def pid(self) -> int:
        return self._process.pid

    @property
    def alive(self) -> bool:
        return not self._closed and self._process.poll() is None

    def _await_ready(self) -> bool:
        """Whether the child has started (waits for it the first time, at most
        :data:`READY_TIMEOUT_S`); marks it :attr:`broken` when it has not."""
        if self._ready:
            return True
        try:
            ready = self._conn.poll(READY_TIMEOUT_S) and self._conn.recv() == _READY
        except (EOFError, OSError):
            ready = False
        if not ready:
            self.broken = True
            code = self._process.poll()
            log.warning("the decoder process did not start (exit code %s)", code)
            self._kill() if code is None else self.close()
        self._ready = ready
        return ready

    def try_read(self, path, sample_rate: int | None, chunk_ms: int, kept_preset, all_luma: bool, size):
        """:meth:`read`, or None when the process is busy with another file or has ended."""
        with self._lock:
            if self._busy or self._closed:
                return None
            self._busy = True
        try:
            # a child that ended before it was ready is broken (not merely gone): asked here
            if not self._await_ready() or not self.alive:
                self._release()
                return None
            read = _FileRead(self, path, sample_rate, chunk_ms, kept_preset, all_luma, size)
        except _NoBuffer as exc:
            log.warning("no shared buffer for the decoder process (%s): this file is read on a thread", exc)
            self._release()
            return None
        except BaseException:
            self._release()
            raise
        self.files_read += 1
        return read

    def read(self, path, sample_rate: int | None, chunk_ms: int, kept_preset, all_luma: bool, size):
        """An iterator of ``(kind, item)`` over ``path`` (``"video"``, :class:`TransferredFrame`;
        ``"audio"``, :class:`~edge_emotion.sources.AudioChunk`), in timestamp order, as
        :func:`merged_items` of ``open_media(path, sample_rate=sample_rate, chunk_ms=chunk_ms)``
        gives them. ``kept_preset``: the preset of the stream's frame subsampler (the frames it keeps
        come with their RGB picture; None: every frame does); ``all_luma``: every frame comes with
        its luma plane (else only the kept ones); ``size``: ``(width, height)`` of the video (sizes
        the shared slots; None for a file without video). Close the iterator to stop early."""
        read = self.try_read(path, sample_rate, chunk_ms, kept_preset, all_luma, size)
        if read is None:
            raise RuntimeError("the decoder process is busy with another file or has ended")
        return read

    def _release(self) -> None:
        with self._lock:
            self._busy = False
        if self._closed:  # closed while the file was read: the socket is closed now
            self._conn.close()
            self._socket.close()

    def close(self) -> None:
        """End the child: its socket is shut down, so it exits; killed if it has not within
        :data:`STOP_TIMEOUT_S`. A file being read meanwhile ends with :class:`MediaError`."""
        if self._closed:
            return
        self._closed = True
        self._shut()
        try:
            self._process.wait(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()
        self._release_socket()

    def _shut(self) -> None:
        import socket

        try:
            self._socket.shutdown(socket.SHUT_RDWR)
        except OSError:  # already shut, or the child is gone
            pass

    def _release_socket(self) -> None:
        """Close the socket, unless a file is being read: that read's thread closes it when it
        stops (so that it never reads from a descriptor number reused meanwhile)."""
        with self._lock:
            if self._busy:
                return
        self._conn.close()
        self._socket.close()

    def _kill(self) -> None:
        """The child does not answer: end it (a later file is read by another process)."""
        log.warning("the decoder process %d does not answer: killing it", self._process.pid)
        if self._closed:
            return
        self._closed = True
        self._shut()
        self._process.kill()
        self._process.wait()
        self._release_socket()

    def __enter__(self) -> DecoderProcess:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:  # noqa: BLE001 - interpreter shutdown
            pass


class _FileRead:
    """One file through a :class:`DecoderProcess`: an iterator of ``(kind, item)``."""

    def __init__(self, decoder: DecoderProcess, path, sample_rate, chunk_ms, kept_preset, all_luma, size):
        from multiprocessing.reduction import send_handle

        self._decoder = decoder
        self._conn = decoder._conn
        self._finished = False
        width, height = size if size is not None else (0, 0)
        frame_bytes = 4 * int(width) * int(height)  # RGB + luma
        if frame_bytes:
            self._slots = max(MIN_SLOTS, min(MAX_SLOTS, BUFFER_BYTES // frame_bytes))
            self._slot_bytes = frame_bytes
        else:
            self._slots, self._slot_bytes = 0, 0
        size_bytes = max(mmap.PAGESIZE, self._slots * self._slot_bytes)
        with _buffer_file(size_bytes) as handle:  # no name: nothing to clean up after a crash
            try:
                self._buffer = mmap.mmap(handle.fileno(), size_bytes)
            except OSError as exc:
                raise _NoBuffer(str(exc)) from None
            request = {
                "path": os.path.abspath(path),  # the child's working folder is where this one's was
                # when it started
                "sample_rate": sample_rate,
                "chunk_ms": int(chunk_ms),
                "kept_preset": kept_preset,
                "all_luma": bool(all_luma),
                "slots": self._slots,
                "slot_bytes": self._slot_bytes,
                "buffer_bytes": size_bytes,
            }
            try:
                self._conn.send(request)
                send_handle(self._conn, handle.fileno(), decoder.pid)
            except OSError as exc:
                self._buffer.close()
                decoder._kill()
                raise MediaError(f"the decoder process ended unexpectedly ({exc})") from None
        self._started = self._done = False
        self._items = self._iterate()

    def __iter__(self) -> Iterator[tuple[str, Any]]:
        return self._items

    def __next__(self) -> tuple[str, Any]:
        return next(self._items)

    def close(self) -> None:
        """Stop reading (the child stops too) and free the process for the next file. Iterate a
        read or close it: one that is neither keeps its process busy."""
        if self._started:
            self._items.close()
        else:  # closing a generator that never ran does not run its clean-up
            self._items.close()
            self._finish()

    def _receive(self):
        try:
            return self._conn.recv()
        except (EOFError, OSError):
            raise self._ended() from None

    def _send(self, message) -> None:
        try:
            self._conn.send(message)
        except OSError:
            raise self._ended() from None

    def _ended(self) -> MediaError:
        try:
            code = self._decoder._process.wait(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            code = None
        self._decoder.close()  # the socket too (the child is gone, or is killed)
        return MediaError(f"the decoder process ended unexpectedly (exit code {code})")

    def _iterate(self) -> Iterator[tuple[str, Any]]:
        self._started = True
        try:
            while True:
                message = self._receive()
                if message == _END:
                    self._finished = True
                    return
                if isinstance(message, tuple) and message and message[0] == "error":
                    self._finished = True
                    raise message[1]
                items, freed = [], []
                for entry in message:
                    items.append(self._item(entry, freed))
                if freed:
                    self._send(freed)
                yield from items
        finally:
            self._finish()

    def _item(self, entry: tuple, freed: list[int]) -> tuple[str, Any]:
        if entry[0] == "audio":
            _, timestamp_ms, pcm, sample_rate = entry
            return "audio", AudioChunk(pcm, sample_rate, timestamp_ms)
        _, timestamp_ms, size, slot, rgb, luma = entry
        if slot is not None:  # rgb / luma are True / False: the pictures are in the slot
            width, height = size
            offset = slot * self._slot_bytes
            pictures = []
            for present, shape in ((rgb, (height, width, 3)), (luma, (height, width))):
                if present:
                    count = int(np.prod(shape))
                    view = np.frombuffer(self._buffer, np.uint8, count, offset)
                    pictures.append(view.reshape(shape).copy())
                    offset += count
                else:
                    pictures.append(None)
            rgb, luma = pictures
            freed.append(slot)
        return "video", TransferredFrame(timestamp_ms, size, rgb, luma)

    def _finish(self) -> None:
        """Stop the child if the file is not finished, wait for its end of the file, tell it the
        file is done (it then waits for the next one) and free the buffer. Once."""
        if self._done:
            return
        self._done = True
        try:
            if not self._decoder._closed:
                if not self._finished:
                    self._send(_STOP)
                    self._drain()
                if not self._decoder._closed:
                    self._send(_DONE)
        except MediaError:  # the child has ended: a later file starts another
            pass
        finally:
            try:
                self._buffer.close()
            except BufferError:  # a view still exported: the buffer is freed with it
                pass
            self._decoder._release()

    def _drain(self) -> None:
        while True:
            try:
                waiting = self._conn.poll(STOP_TIMEOUT_S)
            except OSError:  # closed meanwhile
                raise self._ended() from None
            if not waiting:
                self._decoder._kill()
                return
            message = self._receive()
            if message == _END or (isinstance(message, tuple) and message and message[0] == "error"):
                return


# --- the child ---------------------------------------------------------------------------------


def _picklable(exc: BaseException) -> BaseException:
    import pickle

    try:
        pickle.loads(pickle.dumps(exc))
        return exc
    except Exception:  # noqa: BLE001 - any exception that does not pickle is sent as its message
        return MediaError(f"{type(exc).__name__}: {exc}")


class _ParentGone(Exception):
    """The parent closed its end of the socket (it ended, or closed its decoder)."""


class _Channel:
    """The child's end of the socket: a closed parent raises :class:`_ParentGone`."""

    def __init__(self, conn):
        self._conn = conn

    def send(self, obj) -> None:
        try:
            self._conn.send(obj)
        except (EOFError, OSError):
            raise _ParentGone from None

    def recv(self):
        try:
            return self._conn.recv()
        except (EOFError, OSError):
            raise _ParentGone from None

    def poll(self) -> bool:
        try:
            return self._conn.poll()
        except (EOFError, OSError):
            raise _ParentGone from None


def _serve(conn) -> None:
    from multiprocessing.reduction import recv_handle

    channel = _Channel(conn)
    while True:
        try:
            request = conn.recv()
            fd = recv_handle(conn)
        except (EOFError, OSError):
            return
        try:
            _decode(channel, request, fd)
            while channel.recv() != _DONE:  # the parent's last word on this file (freed slots before it)
                pass
        except _ParentGone:
            return


def _decode(conn, request: dict, fd: int) -> None:
    from ..frontend.align import FrameSubsampler
    from .files import open_media

    buffer = mmap.mmap(fd, request["buffer_bytes"])
    os.close(fd)
    slots, slot_bytes = request["slots"], request["slot_bytes"]
    free = deque(range(slots))
    stopped = False

    def messages(block: bool) -> None:
        nonlocal stopped
        while not stopped and (block or conn.poll()):
            message = conn.recv()
            if message == _STOP:
                stopped = True
            elif message != _DONE:
                free.extend(message)
            block = False

    batch: list[tuple] = []
    items = None
    try:
        media = open_media(request["path"], sample_rate=request["sample_rate"], chunk_ms=request["chunk_ms"])
        preset = request["kept_preset"]
        kept = FrameSubsampler(preset) if preset is not None else None
        items = merged_items(media)
        for kind, item in items:
            messages(block=False)
            if stopped:
                break
            if kind == "audio":
                batch.append(("audio", item.timestamp_ms, item.pcm, item.sample_rate))
            else:
                keep = kept is None or kept.keep(item.timestamp_ms)
                rgb = item.image if keep else None
                luma = item.luma() if keep or request["all_luma"] else None
                nbytes = sum(p.nbytes for p in (rgb, luma) if p is not None)
                size = (item.width, item.height)
                if nbytes == 0 or nbytes > slot_bytes:  # nothing to send, or larger than the video was
                    batch.append(("video", item.timestamp_ms, size, None, rgb, luma))
                else:
                    if not free and batch:  # the parent frees slots as it receives them
                        conn.send(batch)
                        batch = []
                    while not free and not stopped:
                        messages(block=True)
                    if stopped:
                        break
                    slot = free.popleft()
                    offset = slot * slot_bytes
                    for picture in (rgb, luma):
                        if picture is not None:
                            buffer[offset : offset + picture.nbytes] = np.ascontiguousarray(picture).data
                            offset += picture.nbytes
                    batch.append(("video", item.timestamp_ms, size, slot, rgb is not None, luma is not None))
            if len(batch) >= BATCH:
                conn.send(batch)
                batch = []
        if batch and not stopped:
            conn.send(batch)
        last: Any = _END
    except _ParentGone:
        raise
    except Exception as exc:  # noqa: BLE001 - handed to the parent, raised there
        if batch and not stopped:
            conn.send(batch)
        last = ("error", _picklable(exc))
    finally:
        if items is not None:
            items.close()
        buffer.close()
    conn.send(last)


def main(argv: list[str] | None = None) -> None:
    """The child: ``argv`` is the socket's file descriptor."""
    import signal
    from multiprocessing.connection import Connection

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the parent, which closes this process
    argv = sys.argv[1:] if argv is None else argv
    conn = Connection(int(argv[0]))
    # what decoding a file needs, loaded now, while the parent loads its model
    import av  # noqa: F401

    from ..frontend import align  # noqa: F401
    from . import files  # noqa: F401

    try:
        conn.send(_READY)
    except OSError:
        return

    try:
        _serve(conn)
    finally:
        conn.close()


if __name__ == "__main__":
    main()


__all__ = ["DecoderProcess", "TransferredFrame", "merged_items", "process_decoding_available"]
