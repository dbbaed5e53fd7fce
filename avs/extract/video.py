"""Decoding videos with PyAV: what a file holds (:func:`probe`) and its frames as RGB arrays (:func:`iter_frames`).

Frames are numbered from 0 in the order the decoder gives them (presentation order), and timed by their own
presentation timestamps, so variable frame rate videos get true times. Only the frames asked for are converted to
RGB, the costly step; the others are decoded and dropped.

Every problem with a file is an :class:`~avs.errors.InputError` of one line: a missing or empty file, one that is
not a video or is corrupt, one without a video stream or without a decodable frame, and one that ends early — its
last frames missing against the count or duration its container announces, or its data breaking off mid-way. A
truncated file's frames are still given up to where it breaks; the error comes after them, unless the caller takes
what decodes (``allow_truncated``).
"""

from __future__ import annotations

import contextlib
import os
import re
from dataclasses import dataclass
from fractions import Fraction
from typing import TYPE_CHECKING, Iterable, Iterator, NamedTuple

import numpy as np

from avs.errors import InputError

if TYPE_CHECKING:
    from av.container import InputContainer
    from av.video.stream import VideoStream


# How many of its announced frames (or how much of its announced duration) a video may lack before it counts as
# truncated: muxers and decoders disagree by a frame or two on sound files (edit lists, decoder delay), and a
# container's duration is rounded.
TRUNCATION_FRAMES = 2
TRUNCATION_FRACTION = 0.02

_MATROSKA_DURATION = re.compile(r"^(\d+):(\d\d):(\d\d(?:\.\d+)?)$")


@dataclass(frozen=True)
class VideoInfo:
    """What a video's container says about its video stream, without decoding it."""

    path: str
    frames: int | None  # as the container lists them; None where it does not (Matroska, WebM, raw streams)
    duration: float | None  # seconds: the video stream's where the container gives it, else the whole file's
    fps: float | None  # the average frame rate
    width: int
    height: int
    codec: str  # the codec's name ("h264", "av1"), whichever decoder reads it


class Frame(NamedTuple):
    index: int  # from 0, in the order the decoder gives frames
    time: float  # seconds: the frame's presentation timestamp (index / fps where a stream has no timestamps)
    image: np.ndarray  # RGB, uint8, height x width x 3


def import_av():
    """The ``av`` module, or the one-line error saying what to install."""
    try:
        import av
    except ImportError:
        raise missing_extra("decoding videos needs PyAV") from None
    return av


def missing_extra(what: str) -> InputError:
    """The error for a package of the ``extract`` extra that is not installed."""
    return InputError(None, f"{what}: install avs[extract] (pip install 'avs[extract]')")


def probe(path: str | os.PathLike) -> VideoInfo:
    """The video stream's frame count, duration, frame rate, size and codec, as the container states them."""
    with open_video(path) as (container, stream):
        return _info(path, container, stream)


def iter_frames(
    path: str | os.PathLike,
    indices: Iterable[int] | None = None,
    size: tuple[int, int] | None = None,
    interpolation: str = "BICUBIC",
    allow_truncated: bool = False,
) -> Iterator[Frame]:
    """Decode ``path``'s video stream, yielding every frame, or only those at ``indices`` (in increasing order,
    each once; decoding stops after the last). ``size`` is ``(width, height)`` to scale to, with swscale's
    ``interpolation`` (``"BICUBIC"``, ``"AREA"``, ``"BILINEAR"``, ...); ``None`` keeps the video's size.

    An index past the video's last frame is an error, once the frames before it are given. With
    ``allow_truncated`` a file that breaks off or ends early yields what decodes, without an error."""
    wanted = _wanted(indices)
    if wanted == []:
        return
    if size is not None and not (len(size) == 2 and all(isinstance(v, int) and v > 0 for v in size)):
        raise ValueError(f"size must be (width, height) in positive integers, not {size!r}")
    av = import_av()
    from av.video.reformatter import VideoReformatter

    width, height = size if size is not None else (None, None)
    with open_video(path) as (container, stream):
        info = _info(path, container, stream)
        # frame threads and slice threads, as the codec supports: decoding is the other costly step
        stream.thread_type = "AUTO"
        reformatter = VideoReformatter()  # keeps one scaler for the whole video instead of one per frame
        pending = iter(wanted) if wanted is not None else None
        want = next(pending, None) if pending is not None else None
        n, last_time = 0, None
        try:
            for frame in container.decode(stream):
                last_time = _frame_time(path, frame, n, info.fps)
                if pending is None or n == want:
                    rgb = reformatter.reformat(
                        frame, width=width, height=height, format="rgb24", interpolation=interpolation
                    )
                    yield Frame(n, last_time, rgb.to_ndarray())
                    if pending is not None:
                        want = next(pending, None)
                n += 1
                if pending is not None and want is None:
                    return
        except av.error.FFmpegError as e:
            if not allow_truncated or n == 0:
                raise InputError(
                    path, f"corrupt or truncated: decoding stopped after {n} frames ({_reason(e)})"
                ) from None
        if n == 0:
            raise InputError(path, "no video frame could be decoded")
        if want is not None:
            raise InputError(path, f"has {n} frames (0 to {n - 1}); frame {want} was asked for")
        if not allow_truncated:
            problem = _truncation(stream, info, n, last_time)
            if problem:
                raise InputError(path, problem)


def scaled_size(width: int, height: int, max_width: int) -> tuple[int, int]:
    """``(width, height)`` scaled down to at most ``max_width`` wide, keeping the aspect ratio; never up."""
    if width <= max_width:
        return width, height
    return max_width, max(1, round(height * max_width / width))


@contextlib.contextmanager
def open_video(path: str | os.PathLike) -> Iterator[tuple["InputContainer", "VideoStream"]]:
    """The opened container and its main video stream (not a cover picture), closed after the block."""
    av = import_av()
    try:
        st = os.stat(path)
    except OSError as e:
        raise InputError(path, e.strerror or str(e)) from None
    if not os.path.isfile(path):
        raise InputError(path, "is not a file")
    if st.st_size == 0:
        raise InputError(path, "is empty (0 bytes), not a video")
    try:
        container = av.open(os.fspath(path), metadata_errors="replace")
    except av.error.InvalidDataError as e:
        raise InputError(path, f"not a video file, or a corrupt one ({_reason(e)})") from None
    except av.error.FFmpegError as e:
        raise InputError(path, f"cannot open as a video ({_reason(e)})") from None
    except OSError as e:
        raise InputError(path, e.strerror or str(e)) from None
    try:
        # av_find_best_stream's choice: among several video streams, the one that is no attached picture
        stream = container.streams.best("video")
        if stream is None:
            kinds = sorted({s.type for s in container.streams})
            raise InputError(path, f"has no video stream (only {', '.join(kinds) or 'no streams'})")
        if stream.codec_context is None:
            raise InputError(path, "no decoder for its video stream (an unknown codec, or a damaged header)")
        yield container, stream
    finally:
        container.close()


def _wanted(indices: Iterable[int] | None) -> list[int] | None:
    if indices is None:
        return None
    wanted = sorted(set(int(i) for i in indices))
    if wanted and wanted[0] < 0:
        raise ValueError(f"frame indices start at 0, not {wanted[0]}")
    return wanted


def _info(path, container: "InputContainer", stream: "VideoStream") -> VideoInfo:
    ctx = stream.codec_context
    rate = stream.average_rate or stream.guessed_rate
    duration = _stream_duration(stream)
    if duration is None and container.duration is not None:
        duration = container.duration / 1_000_000  # AV_TIME_BASE: microseconds
    return VideoInfo(
        path=os.fspath(path),
        frames=stream.frames or None,
        duration=duration,
        fps=float(rate) if rate else None,
        width=ctx.width,
        height=ctx.height,
        codec=ctx.codec.canonical_name,  # "av1", where the decoder's name would be "libdav1d"
    )


def _stream_duration(stream: "VideoStream") -> float | None:
    """The video stream's own duration in seconds (Matroska keeps it in a tag): never the file's, which an audio
    stream may make longer."""
    if stream.duration is not None and stream.time_base is not None:
        return float(stream.duration * stream.time_base)
    m = _MATROSKA_DURATION.match(stream.metadata.get("DURATION", ""))
    if m:
        return int(m.group(1)) * 3600 + int(m.group(2)) * 60 + float(m.group(3))
    return None


def _frame_time(path, frame, index: int, fps: float | None) -> float:
    if frame.pts is not None and frame.time_base is not None:
        return float(frame.pts * frame.time_base)
    if not fps:
        raise InputError(path, "its frames have no timestamps and its stream no frame rate")
    return float(Fraction(index) / Fraction(fps))


def _truncation(stream: "VideoStream", info: VideoInfo, n: int, last_time: float | None) -> str | None:
    """Why a video that decoded to its end looks cut short against what its container announces, or None."""
    if info.frames:
        if info.frames - n > max(TRUNCATION_FRAMES, TRUNCATION_FRACTION * info.frames):
            return f"truncated: only {n} of the {info.frames} frames its container lists decode"
        return None
    duration = _stream_duration(stream)
    if duration is None or last_time is None or not info.fps:
        return None
    start = float(stream.start_time * stream.time_base) if stream.start_time is not None else 0.0
    end = last_time + 1 / info.fps
    if start + duration - end > max(TRUNCATION_FRAMES / info.fps, TRUNCATION_FRACTION * duration):
        return f"truncated: its frames end at {end - start:.2f} s of the {duration:.2f} s its container lists"
    return None


def _reason(e: Exception) -> str:
    """FFmpeg's one-line reason, without the errno and file name PyAV adds."""
    return getattr(e, "strerror", None) or str(e).splitlines()[0]
