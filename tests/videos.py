"""Small synthetic videos for the extraction tests, written with PyAV: segments of moving texture with hard cuts
at known frames, in the codecs this PyAV wheel can encode."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path
from typing import Sequence

import numpy as np

WIDTH, HEIGHT, FPS = 96, 64, 25

# (encoder, container suffix, encoder options): the fastest settings, since only decoding is under test
CODECS = {
    "h264": ("libx264", ".mp4", {"preset": "ultrafast", "crf": "23"}),
    "mpeg4": ("mpeg4", ".avi", {"qscale": "4"}),
    "vp9": ("libvpx-vp9", ".webm", {"deadline": "realtime", "cpu-used": "8", "lag-in-frames": "0"}),
    "av1": ("libsvtav1", ".mkv", {"preset": "12"}),
    "hevc": ("libx265", ".mp4", {"preset": "ultrafast", "x265-params": "log-level=none"}),
}


def available(codec: str) -> bool:
    import av

    return CODECS[codec][0] in av.codecs_available


# Distinct tints and grain sizes, so that neighbouring segments differ as two scenes do
_TINTS = [(220, 60, 40), (40, 150, 230), (240, 220, 80), (50, 190, 90), (150, 60, 200), (235, 130, 30)]
_CELLS = [8, 5, 12, 6, 10, 16]


def texture(k: int, width: int, height: int) -> np.ndarray:
    """Segment ``k``'s scene: a smooth random RGB texture in its own tint and grain, twice the frame's size so
    that it can pan."""
    import av

    rng = np.random.default_rng(k)
    cell = _CELLS[k % len(_CELLS)]
    coarse = rng.integers(0, 256, (2 * height // cell + 2, 2 * width // cell + 2, 3))
    coarse = ((coarse + np.array(_TINTS[k % len(_TINTS)])) // 2).astype(np.uint8)
    big = av.VideoFrame.from_ndarray(coarse, format="rgb24").reformat(
        width=2 * width, height=2 * height, interpolation="BICUBIC"
    )
    return big.to_ndarray()


def segment_frames(k: int, n: int, width: int = WIDTH, height: int = HEIGHT) -> list[np.ndarray]:
    """``n`` frames panning over segment ``k``'s texture (each segment another way), with fine noise that changes
    every frame, as a camera's would."""
    tex = texture(k, width, height)
    rng = np.random.default_rng(k + 1000)
    dx, dy = [(2, 1), (-1, 2), (1, -2), (-2, -1)][k % 4]
    out = []
    for i in range(n):
        x, y = _bounce(dx * i, width), _bounce(dy * i, height)
        frame = tex[y : y + height, x : x + width].astype(np.int16)
        frame += rng.integers(-6, 7, frame.shape, dtype=np.int16)
        out.append(np.clip(frame, 0, 255).astype(np.uint8))
    return out


def _bounce(v: int, span: int) -> int:
    """``v`` folded into ``0..span`` back and forth: a pan that turns at the texture's edge instead of jumping."""
    v %= 2 * span
    return v if v <= span else 2 * span - v


def cut_frames(lengths: Sequence[int], width: int = WIDTH, height: int = HEIGHT) -> list[np.ndarray]:
    """Segments of the given lengths, each another scene: a hard cut before each segment but the first."""
    frames: list[np.ndarray] = []
    for k, n in enumerate(lengths):
        frames += segment_frames(k, n, width, height)
    return frames


def cuts_of(lengths: Sequence[int]) -> list[int]:
    """The first frame of every segment but the first."""
    return [int(c) for c in np.cumsum(lengths)[:-1]]


def write_video(
    path: str | Path,
    frames: Sequence[np.ndarray],
    codec: str = "h264",
    pts_ms: Sequence[int] | None = None,
) -> Path:
    """Encode ``frames`` (RGB uint8) at ``FPS``, or at the given presentation times in milliseconds (a variable
    frame rate)."""
    import av

    encoder, _, options = CODECS[codec]
    path = Path(path)
    with av.open(str(path), "w") as container:
        stream = container.add_stream(encoder, rate=FPS, options=dict(options))
        stream.width, stream.height = frames[0].shape[1], frames[0].shape[0]
        stream.pix_fmt = "yuv420p"
        if pts_ms is not None:
            stream.codec_context.time_base = Fraction(1, 1000)
            stream.time_base = Fraction(1, 1000)
        for i, image in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(image, format="rgb24")
            if pts_ms is not None:
                frame.pts, frame.time_base = pts_ms[i], Fraction(1, 1000)
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    return path


def write_audio(path: str | Path, seconds: float = 1.0) -> Path:
    """An audio-only file (AAC in MP4)."""
    import av

    path = Path(path)
    rate = 44100
    with av.open(str(path), "w") as container:
        stream = container.add_stream("aac", rate=rate)
        t = np.arange(int(seconds * rate)) / rate
        samples = (0.2 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
        for start in range(0, len(samples), 1024):
            chunk = samples[start : start + 1024].reshape(1, -1)
            frame = av.AudioFrame.from_ndarray(chunk, format="fltp", layout="mono")
            frame.sample_rate = rate
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    return path
