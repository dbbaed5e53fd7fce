"""``avs extract``: video files to a collection store — shots, keyframes, CLIP image features.

Per video: its shots (a V3C master shot file, TransNetV2, or the content detector), the middle frame of each
shot and ``frames_per_shot`` frames spread over it, CLIP's preprocessing of those, and their embeddings by the
CLIP image tower of the user's checkpoint. A shot's vector (feature ``clip``) is its middle frame's; the
spread frames are the frame-level feature (``clip_frames``) LAFF-ml fuses. Shot ids are ``shot<video>_<n>``,
the video id the file's stem and ``n`` from 1, as in V3C's master shot reference and NIST's judgments.

Decoding and preprocessing run in a thread ahead of the encoder (PyAV, Pillow and torch release the GIL), so
the two overlap. Each video's result is kept in ``<out>.extract/<video>.npz`` as soon as it is done: an
interrupted extraction resumes with the videos not yet done, and one writer merges them into the store at the
end. A video that cannot be read is skipped with its reason; the others go into the store.
"""

from __future__ import annotations

import json
import os
import queue
import shutil
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np
import torch

from avs.engine.encode import encode_batch
from avs.engine.executor import Executor
from avs.errors import InputError
from avs.extract.shots import (
    MSB_TOLERANCE_FRAMES,
    ContentShotDetector,
    Shot,
    TransNetV2Detector,
    check_msb_matches,
    middle_frame,
    read_msb,
    uniform_frames,
    write_msb,
)
from avs.extract.video import iter_frames, probe
from avs.formats.fileio import atomic_open, check_writable, file_sha256
from avs.formats.shots import natural_key
from avs.formats.store import FeatureSpec, FrameSpec, StoreWriter
from avs.models.clip_vision import ClipVisionConfig, load_clip_vision, preprocess_array

SHOT_METHODS = ("msb", "transnetv2", "content")
VIDEO_SUFFIXES = (".mp4", ".m4v", ".mov", ".mkv", ".webm", ".avi", ".mpg", ".mpeg", ".ts")
EXTRACT_VERSION = 1
THUMB_WIDTH = 320
_AHEAD = 2  # videos decoded ahead of the encoder: enough to overlap, little memory


@dataclass(frozen=True)
class ExtractConfig:
    checkpoint: str | os.PathLike
    clip_config: str | os.PathLike | None = None  # architecture name or open_clip JSON; None: from the shapes
    shots: str | None = None  # one of SHOT_METHODS; default msb when msb_dir is given, else transnetv2
    msb_dir: str | os.PathLike | None = None  # <video>.tsv master shot files
    msb_out: str | os.PathLike | None = None  # write the shots found as <video>.tsv here
    frames_per_shot: int = 0  # frame-level feature: frames spread over each shot (0: none)
    thumbs: str | os.PathLike | None = None  # shot<video>_<n>_RKF.jpg keyframe thumbnails here
    feature: str = "clip"
    batch_size: int = 64
    device: str = "cpu"

    @property
    def method(self) -> str:
        return self.shots or ("msb" if self.msb_dir is not None else "transnetv2")

    def check(self) -> None:
        if self.method not in SHOT_METHODS:
            raise InputError(None, f"--shots {self.method!r} is not one of {', '.join(SHOT_METHODS)}")
        if self.method == "msb" and self.msb_dir is None:
            raise InputError(None, "--shots msb reads master shot files: give --msb DIR")
        if self.msb_dir is not None and not Path(self.msb_dir).is_dir():
            raise InputError(self.msb_dir, "no such folder (--msb: the master shot files, <video>.tsv)")
        if not Path(self.checkpoint).is_file():
            raise InputError(self.checkpoint, "no such file (the CLIP checkpoint, --checkpoint)")
        if self.msb_out is not None and self.msb_dir is not None:
            if Path(self.msb_out).resolve() == Path(self.msb_dir).resolve():
                raise InputError(self.msb_out, "--msb-out is the --msb folder this extraction reads")
        if self.frames_per_shot < 0 or self.batch_size < 1:
            raise InputError(None, "--frames-per-shot must be >= 0 and the batch size >= 1")


@dataclass
class Skipped:
    video: str
    reason: str


@dataclass
class ExtractResult:
    store: Path
    videos: int  # in the store
    shots: int
    skipped: list[Skipped] = field(default_factory=list)
    resumed: int = 0  # videos whose results an earlier, interrupted run had kept
    seconds: float = 0.0
    frames_encoded: int = 0


def list_videos(inputs: Sequence[str | os.PathLike]) -> list[Path]:
    """Video files from files, folders (their video files, sorted) and list files (``.txt``/``.lst``: one
    path a line, relative to the list). Video ids are file stems, so two files with one stem are refused."""
    found: list[Path] = []
    for item in map(Path, inputs):
        if item.is_dir():
            found += sorted(p for p in item.iterdir() if p.suffix.lower() in VIDEO_SUFFIXES and p.is_file())
        elif item.suffix.lower() in (".txt", ".lst"):
            lines = _list_lines(item)
            found += [item.parent / line.strip() for line in lines if line.strip() and not line.startswith("#")]
        elif item.exists():
            found.append(item)
        else:
            raise InputError(item, "no such file or folder")
    seen: dict[str, Path] = {}
    for p in found:
        if p.stem in seen:
            raise InputError(p, f"has the video id {p.stem!r} of {seen[p.stem]} too (ids are file stems)")
        seen[p.stem] = p
    if not found:
        raise InputError(None, "no video files given")
    return found


def _list_lines(path: Path) -> list[str]:
    try:
        data = path.read_bytes()
    except OSError as e:
        raise InputError(path, e.strerror or str(e)) from None
    try:
        return data.decode("utf-8-sig").splitlines()
    except UnicodeDecodeError as e:
        line = data.count(b"\n", 0, e.start) + 1
        raise InputError(path, "not UTF-8 text: a list of video paths, one a line, is expected", line=line) from None


def load_encoder(config: ExtractConfig):
    """The CLIP image tower of the checkpoint, in eval mode on the configured device."""
    arch = config.clip_config
    if arch is not None and Path(arch).is_file():
        arch = ClipVisionConfig.from_open_clip_json(arch)
    return load_clip_vision(
        config.checkpoint, os.fspath(arch) if isinstance(arch, os.PathLike) else arch, device=config.device
    )


def _settings(config: ExtractConfig, encoder) -> dict:
    """What every per-video result must share with this run to be reused (and what the store records)."""
    return {
        "version": EXTRACT_VERSION,
        "checkpoint": os.fspath(Path(config.checkpoint).resolve()),
        "checkpoint_sha256": file_sha256(config.checkpoint),
        "architecture": asdict(encoder.config),
        "shots": config.method,
        "frames_per_shot": config.frames_per_shot,
        "feature": config.feature,
    }


@dataclass
class _Frames:
    """Preprocessed frames of one video, in frame order; more of the same video may follow."""

    video: str
    frames: list[int]
    images: torch.Tensor  # (len(frames), 3, S, S)


@dataclass
class _Done:
    """A video all of whose frames were sent: its shots, and the frames each shot takes (middle first)."""

    video: Path
    shots: list[Shot]
    wanted: list[list[int]]


def _shots(video: Path, config: ExtractConfig, detector) -> list[Shot]:
    if config.method != "msb":
        return detector.detect_video(video)
    msb = Path(config.msb_dir) / f"{video.stem}.tsv"
    if not msb.is_file():
        raise InputError(msb, "no master shot file for this video")
    shots = read_msb(msb)
    info = probe(video)
    if info.frames is not None:
        check_msb_matches(shots, info.frames, msb)
    elif info.duration and info.fps:
        # Matroska and WebM list no frame count: estimate it from the duration, with a frame rate's slack
        estimate = round(info.duration * info.fps)
        check_msb_matches(shots, estimate, msb, max(MSB_TOLERANCE_FRAMES, round(0.01 * estimate)))
    return shots


def _decode(video: Path, config: ExtractConfig, detector, image_size: int, emit) -> _Done:
    """Hand ``video``'s wanted frames, preprocessed, to ``emit(frames, images)`` in chunks of ``batch_size``
    (the last one shorter), then return its :class:`_Done`.

    The chunks are fixed, never "whatever is ready": a frame's embedding must not depend on timing or on where it
    runs, and a matrix product's last bits depend on how many rows it has."""
    shots = _shots(video, config, detector)
    if not shots:
        raise InputError(video, "no shots found")
    k = config.frames_per_shot
    wanted = [[middle_frame(s), *(uniform_frames(s, k) if k else [])] for s in shots]
    thumbs = {w[0]: n for n, w in enumerate(wanted, 1)} if config.thumbs is not None else {}
    frames: list[int] = []
    images: list[torch.Tensor] = []
    for f in iter_frames(video, {i for w in wanted for i in w}):
        if f.index in thumbs:
            _thumbnail(f.image, Path(config.thumbs) / f"shot{video.stem}_{thumbs[f.index]}_RKF.jpg")
        frames.append(f.index)
        images.append(preprocess_array(f.image, image_size))
        if len(frames) == config.batch_size:
            emit(frames, torch.stack(images))
            frames, images = [], []
    if frames:
        emit(frames, torch.stack(images))
    return _Done(video, shots, wanted)


def _thumbnail(image: np.ndarray, path: Path) -> None:
    from PIL import Image

    thumb = Image.fromarray(image)
    if thumb.width > THUMB_WIDTH:
        thumb = thumb.resize((THUMB_WIDTH, max(1, round(thumb.height * THUMB_WIDTH / thumb.width))), Image.BICUBIC)
    with atomic_open(path, "wb", force=True) as f:
        thumb.save(f, format="JPEG", quality=85)


def _detector(config: ExtractConfig):
    """The shot detector ``config`` asks for, loaded (None for master shot files)."""
    if config.method == "transnetv2":
        return TransNetV2Detector(config.device)
    return ContentShotDetector() if config.method == "content" else None


def _finish(work: Path, done: _Done, by_frame: dict[int, np.ndarray], config: ExtractConfig) -> None:
    """Keep one video's result: per shot its middle frame's embedding, then its spread frames'."""
    emb = np.stack([np.stack([by_frame[i] for i in w]) for w in done.wanted])
    _keep(work / f"{done.video.stem}.npz", done.shots, emb)
    if config.msb_out is not None:
        write_msb(Path(config.msb_out) / f"{done.video.stem}.tsv", done.shots, force=True)


def _worker_state(config: ExtractConfig):
    """What a worker of an executor loads once: the CLIP tower and the shot detector."""
    return config, load_encoder(config), _detector(config)


def _extract_video(state, task: tuple[Path, Path]) -> Skipped | int:
    """One video, whole, in an executor's worker: decoded, encoded in the same fixed batches as in-process, kept
    in the work folder. The frames encoded, or why it was skipped."""
    config, encoder, detector = state
    video, work = task
    by_frame: dict[int, np.ndarray] = {}

    def encode(frames: list[int], images: torch.Tensor) -> None:
        by_frame.update(zip(frames, encode_batch(encoder, (images,), config.device).numpy()))

    try:
        done = _decode(video, config, detector, encoder.config.image_size, encode)
    except InputError as e:
        return Skipped(video.stem, str(e))
    _finish(work, done, by_frame, config)
    return len(by_frame)


def _decoded_ahead(
    videos: Sequence[Path], config: ExtractConfig, image_size: int
) -> Iterator[_Frames | _Done | Skipped]:
    """Each video decoded (or skipped with its reason) in a thread running ahead of the consumer, its frames sent
    in batches as they decode, so that decoding and encoding overlap within a video and across videos."""
    out: queue.Queue = queue.Queue(maxsize=_AHEAD)
    stop = threading.Event()

    def work() -> None:
        try:
            detector = _detector(config)
            for v in videos:
                if stop.is_set():
                    return

                def send(frames: list[int], images: torch.Tensor, video: str = v.stem) -> None:
                    out.put(_Frames(video, frames, images))

                try:
                    out.put(_decode(v, config, detector, image_size, send))
                except InputError as e:  # the consumer drops the frames it had of this video
                    out.put(Skipped(v.stem, str(e)))
        except BaseException as e:  # noqa: BLE001 - handed to the consumer, which raises it
            out.put(e)
        out.put(None)

    thread = threading.Thread(target=work, name="avs-extract-decode", daemon=True)
    thread.start()
    try:
        while (item := out.get()) is not None:
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        while thread.is_alive():  # let the worker finish the video in hand and see the stop
            try:
                out.get(timeout=0.1)
            except queue.Empty:
                pass


def extract(
    inputs: Sequence[str | os.PathLike],
    out: str | os.PathLike,
    config: ExtractConfig,
    force: bool = False,
    progress: bool = True,
    executor: Executor | None = None,
) -> ExtractResult:
    """Extract every video of ``inputs`` (see :func:`list_videos`) into the store ``out``; with ``executor``, one
    video a piece of work in its workers (each loads the checkpoint once), merged here by one writer."""
    from tqdm import tqdm

    t0 = time.perf_counter()
    config.check()
    videos = list_videos(inputs)
    # the videos, list files and checkpoint are inputs; a folder of videos is not (a store may live beside them)
    lists = [i for i in inputs if not Path(i).is_dir()]
    out = check_writable(out, force, inputs=[*lists, *videos, config.checkpoint, config.clip_config])
    encoder = load_encoder(config)
    settings = _settings(config, encoder)
    work = out.with_name(out.name + ".extract")
    # before the work folder is made: a refusal leaves nothing behind (videos an earlier run kept are not redone)
    _check_msb_out(config, [v for v in videos if not (work / f"{v.stem}.npz").exists()], force)
    done = _resumable(work, settings, force)
    todo = [v for v in videos if v.stem not in done]
    skipped: list[Skipped] = []
    frames_encoded = 0
    with tqdm(
        total=len(videos),
        initial=len(videos) - len(todo),
        unit="video",
        desc="extract",
        disable=None if progress else True,
    ) as bar:
        encoded: dict[str, dict[int, np.ndarray]] = {}  # per video in hand: frame -> its embedding
        if executor is not None:  # one video a piece of work; the results land in the work folder as they come
            results = executor.map(_extract_video, [(v, work) for v in todo], _worker_state, (config,))
            skipped += [r for r in results if isinstance(r, Skipped)]
            frames_encoded += sum(r for r in results if isinstance(r, int))
            done.update(v.stem for v, r in zip(todo, results) if not isinstance(r, Skipped))
            bar.update(len(todo))
            todo = []
        for item in _decoded_ahead(todo, config, encoder.config.image_size) if todo else ():
            if isinstance(item, _Frames):
                emb = encode_batch(encoder, (item.images,), config.device).numpy()
                encoded.setdefault(item.video, {}).update(zip(item.frames, emb))
                frames_encoded += len(item.frames)
                continue
            if isinstance(item, Skipped):
                encoded.pop(item.video, None)
                skipped.append(item)
            else:
                _finish(work, item, encoded.pop(item.video.stem), config)
                done.add(item.video.stem)
            bar.update(1)
    stems = sorted((v.stem for v in videos if v.stem in done), key=natural_key)
    if not stems:
        raise InputError(out, "no video could be extracted: " + "; ".join(f"{s.video}: {s.reason}" for s in skipped))
    n_shots = _merge(work, stems, out, settings, config, force)
    shutil.rmtree(work)
    return ExtractResult(
        out, len(stems), n_shots, skipped, len(videos) - len(todo), time.perf_counter() - t0, frames_encoded
    )


def _check_msb_out(config: ExtractConfig, todo: Sequence[Path], force: bool) -> None:
    """Shot files already in ``--msb-out`` (V3C's own, say) are replaced only with ``force``, and never the ones
    this extraction reads."""
    if config.msb_out is None:
        return
    there = [Path(config.msb_out) / f"{v.stem}.tsv" for v in todo]
    there = [p for p in there if p.exists()]
    if there and not force:
        raise InputError(there[0], f"already exists ({len(there)} shot file(s) of these videos; --force replaces them)")


def _resumable(work: Path, settings: dict, force: bool) -> set[str]:
    """The videos an earlier run of the same settings finished; a work folder of other settings is an error
    (or, with ``force``, started over)."""
    marker = work / "settings.json"
    if work.exists():
        try:
            same = json.loads(marker.read_text()) == json.loads(json.dumps(settings))
        except (OSError, ValueError):
            same = False
        if same:
            return {p.stem for p in work.glob("*.npz")}
        if not force:
            raise InputError(work, "holds an interrupted extraction with other settings: --force starts over")
        shutil.rmtree(work)
    work.mkdir(parents=True)
    with atomic_open(marker) as f:
        f.write(json.dumps(settings, indent=2) + "\n")
    return set()


def _keep(path: Path, shots: Sequence[Shot], emb: np.ndarray) -> None:
    """One video's result, (shots, 1 + frames per shot, dim) embeddings, kept until the store is written."""
    shots = np.array([[s.start_frame, s.end_frame, s.start_time, s.end_time] for s in shots], np.float64)
    with atomic_open(path, "wb", force=True) as f:
        np.savez(f, emb=emb.astype(np.float32), shots=shots)


def _merge(work: Path, stems: list[str], out: Path, settings: dict, config: ExtractConfig, force: bool) -> int:
    """One writer: the kept per-video results, in natural video order, into the store."""
    counts, dim = {}, None
    for stem in stems:
        with np.load(work / f"{stem}.npz") as z:
            counts[stem], _, dim = z["emb"].shape
    ids = [f"shot{stem}_{n}" for stem in stems for n in range(1, counts[stem] + 1)]
    k = config.frames_per_shot
    arch = settings["architecture"]
    shape = f"{arch['width']}w/{arch['layers']}L/{arch['patch_size']}p"
    extractor = f"CLIP ViT {shape}, sha256 {settings['checkpoint_sha256'][:12]}"
    specs = [FeatureSpec(config.feature, dim, "float32", extractor)]
    frames = (
        [FrameSpec(f"{config.feature}_frames", dim, "float32", extractor, rows=len(ids) * k, max_frames=k)] if k else []
    )
    meta = {"extract": settings}
    with StoreWriter(out, ids, specs, name=out.stem, meta=meta, force=force, frames=frames) as w:
        for stem in stems:
            with np.load(work / f"{stem}.npz") as z:
                emb = z["emb"]
            w.append(config.feature, emb[:, 0])
            if k:
                w.append_frames(f"{config.feature}_frames", list(emb[:, 1:]))
        w.finish()
    return len(ids)


def summary(result: ExtractResult) -> list[str]:
    """The lines ``avs extract`` ends with: what went in, and every skipped video with its reason."""
    lines = [
        f"wrote {result.store}: {result.videos} videos, {result.shots} shots"
        + (f" ({result.resumed} kept from an interrupted run)" if result.resumed else "")
        + f", {result.seconds:.1f} s"
    ]
    if result.skipped:
        lines.append(f"skipped {len(result.skipped)} video(s):")
        lines += [f"  {s.video}: {s.reason}" for s in result.skipped]
    return lines


__all__ = ["ExtractConfig", "ExtractResult", "Skipped", "extract", "list_videos", "load_encoder", "summary"]
