"""avs extract throughput: each stage alone and the whole pipeline, in one run, on the same videos.

Videos are SIMULATED (made here with PyAV: scenes of moving texture with hard cuts every 2-5 s, H.264); the CLIP
image tower has the shapes of the named architecture and random weights (throughput does not depend on the
values). Stages, each timed alone:
  decode    the keyframe pass: every frame decoded, the wanted ones converted to RGB (iter_frames)
  shots     the shot detector on its own decoding of the video (transnetv2 or content; msb reads a file)
  encode    CLIP preprocessing + the image tower on the keyframes (batch --batch-size)
and the pipeline, `avs extract` (extract()), without its start-up (checkpoint hash and load, timed apart).
Throughput is in video frames per second; encode also in keyframes per second.

    python bench/extract.py [--videos 12] [--seconds 20] [--size 640x360] [--shots msb] [--arch ViT-B-32]

Many short videos by default, as a collection is: the first batch of keyframes has to be decoded before the
encoder can start, a wait that a few long videos make look larger than it is over thousands.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(Path(__file__).parent.parent / "tests"))
from _machine import describe  # noqa: E402

from avs.extract.pipeline import ExtractConfig, extract, load_encoder  # noqa: E402
from avs.extract.shots import (  # noqa: E402
    ContentShotDetector,
    TransNetV2Detector,
    middle_frame,
    shots_from_cuts,
    uniform_frames,
    write_msb,
)
from avs.extract.video import iter_frames  # noqa: E402
from avs.models.clip_vision import ClipVisionConfig, ClipVisionEncoder, preprocess_array  # noqa: E402

from videos import cut_frames, write_video  # noqa: E402  (the tests' video maker: hard cuts at known frames)


def make_videos(folder: Path, n: int, seconds: float, size: tuple[int, int], fps: int = 25) -> list[Path]:
    rng = np.random.default_rng(0)
    videos = []
    for v in range(n):
        total, lengths = int(seconds * fps), []
        while sum(lengths) < total:
            lengths.append(int(rng.integers(2 * fps, 5 * fps)))
        lengths[-1] -= sum(lengths) - total
        path = write_video(folder / f"{v + 1:05d}.mp4", cut_frames(lengths, *size))
        times = [i / fps for i in range(total)]
        write_msb(folder / "msb" / f"{v + 1:05d}.tsv", shots_from_cuts(list(np.cumsum(lengths)[:-1]), times))
        videos.append(path)
    return videos


def make_checkpoint(path: Path, arch: str) -> Path:
    torch.manual_seed(0)
    tower = ClipVisionEncoder(ClipVisionConfig.from_name(arch))
    for p in tower.parameters():
        p.data.normal_(0, 0.02)
    torch.save({f"visual.{k}": v for k, v in tower.state_dict().items()}, path)
    return path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--videos", type=int, default=12)
    ap.add_argument("--seconds", type=float, default=20)
    ap.add_argument("--size", default="640x360", help="WIDTHxHEIGHT of the generated videos")
    ap.add_argument("--shots", choices=["msb", "transnetv2", "content"], default="msb")
    ap.add_argument("--arch", default="ViT-B-32")
    ap.add_argument("--frames-per-shot", type=int, default=0)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--executor", choices=["local", "ray"], help="Also time the pipeline spread over this executor.")
    args = ap.parse_args()
    size = tuple(int(v) for v in args.size.split("x"))
    print(describe())
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        t = time.perf_counter()
        videos = make_videos(tmp, args.videos, args.seconds, size)
        frames = int(args.videos * args.seconds * 25)
        print(
            f"SIMULATED videos: {args.videos} x {args.seconds:g} s, {size[0]}x{size[1]} H.264, 25 fps = {frames} "
            f"frames (made in {time.perf_counter() - t:.1f} s); {args.arch} random weights; shots {args.shots}; "
            f"{args.frames_per_shot} extra frames per shot"
        )
        ckpt = make_checkpoint(tmp / "clip.pt", args.arch)
        cfg = ExtractConfig(
            checkpoint=ckpt,
            clip_config=args.arch,
            shots=args.shots,
            msb_dir=tmp / "msb",
            frames_per_shot=args.frames_per_shot,
            batch_size=args.batch_size,
        )

        t = time.perf_counter()
        encoder = load_encoder(cfg)
        from avs.formats.fileio import file_sha256

        file_sha256(ckpt)
        startup = time.perf_counter() - t

        from avs.extract.shots import read_msb

        shots = {v: read_msb(tmp / "msb" / f"{v.stem}.tsv") for v in videos}
        wanted = {
            v: sorted({i for s in shots[v] for i in (middle_frame(s), *uniform_frames(s, args.frames_per_shot or 1))})
            if args.frames_per_shot
            else [middle_frame(s) for s in shots[v]]
            for v in videos
        }
        stage = {}

        t = time.perf_counter()
        keyframes = {v: [f.image for f in iter_frames(v, wanted[v])] for v in videos}
        stage["decode"] = time.perf_counter() - t

        if args.shots != "msb":
            detector = TransNetV2Detector() if args.shots == "transnetv2" else ContentShotDetector()
            t = time.perf_counter()
            for v in videos:
                detector.detect_video(v)
            stage["shots"] = time.perf_counter() - t

        images = [img for v in videos for img in keyframes[v]]
        t = time.perf_counter()
        with torch.inference_mode():
            batch = []
            for img in images:
                batch.append(preprocess_array(img, encoder.config.image_size))
                if len(batch) == args.batch_size:
                    encoder(torch.stack(batch))
                    batch = []
            if batch:
                encoder(torch.stack(batch))
        stage["encode"] = time.perf_counter() - t

        t = time.perf_counter()
        result = extract(videos, tmp / "store.h5", cfg, progress=False)
        whole = time.perf_counter() - t - startup
        assert result.videos == args.videos and not result.skipped

        print(f"\nstart-up (checkpoint sha256 + load): {startup:.2f} s, not counted below")
        print(f"{'stage':<10} {'seconds':>8} {'frames/s':>10}")
        for name, secs in stage.items():
            extra = f"   ({len(images) / secs:.1f} keyframes/s)" if name == "encode" else ""
            print(f"{name:<10} {secs:8.2f} {frames / secs:10.1f}{extra}")
        slowest = max(stage, key=stage.get)
        print(f"{'pipeline':<10} {whole:8.2f} {frames / whole:10.1f}")
        print(
            f"\npipeline / slowest stage alone ({slowest}): {stage[slowest] / whole:.2f}x "
            f"(sum of the stages: {sum(stage.values()):.2f} s; {result.shots} shots, {len(images)} keyframes)"
        )
        if args.executor:
            from avs.engine.executor import Executor

            t = time.perf_counter()
            spread = extract(videos, tmp / "spread.h5", cfg, progress=False, executor=Executor(args.executor))
            secs = time.perf_counter() - t
            assert spread.videos == args.videos
            print(
                f"--executor {args.executor} ({os.cpu_count()} workers, 1 torch thread each; start-up included): "
                f"{secs:.2f} s, {frames / secs:.1f} frames/s, {whole / secs:.2f}x the in-process pipeline"
            )


if __name__ == "__main__":
    main()
