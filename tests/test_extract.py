"""avs extract: decoding (PyAV), shots (master shot files, TransNetV2, PySceneDetect), keyframes, CLIP image
features into a store; bad videos skipped with their reason; resuming; and the whole way from a generated video
to an evaluated run. Every video here is made by the test with PyAV, with hard cuts at known frames."""

from __future__ import annotations

import json
import random

import h5py
import numpy as np
import pytest
import torch

from avs.errors import InputError
from avs.extract import pipeline
from avs.extract.pipeline import ExtractConfig, extract, list_videos, load_encoder
from avs.extract.shots import (
    ContentShotDetector,
    Shot,
    TransNetV2Detector,
    middle_frame,
    read_msb,
    shots_from_cuts,
    uniform_frames,
    write_msb,
)
from avs.extract.video import iter_frames, probe
from avs.formats.store import open_store
from avs.models.clip_vision import preprocess_array

from conftest import TINY_CLIP
from videos import CODECS, FPS, HEIGHT, WIDTH, available, cut_frames, cuts_of, write_audio, write_video

LENGTHS = [40, 55, 30, 70, 45, 60]  # six scenes, 300 frames, cuts at 40, 95, 125, 195, 240
CKPT = TINY_CLIP / "model.pt"
ARCH = TINY_CLIP / "tiny-vit.json"


@pytest.fixture(scope="module")
def frames():
    return cut_frames(LENGTHS)


@pytest.fixture(scope="module")
def video(tmp_path_factory, frames):
    return write_video(tmp_path_factory.mktemp("v") / "07480.mp4", frames)


def config(**kw) -> ExtractConfig:
    return ExtractConfig(checkpoint=CKPT, clip_config=ARCH, **kw)


# --- decoding ---


@pytest.mark.parametrize(
    "codec, suffix",
    [("h264", ".mp4"), ("h264", ".mkv"), ("mpeg4", ".avi"), ("vp9", ".webm"), ("av1", ".mkv"), ("hevc", ".mp4")],
)
def test_every_codec_decodes_to_the_frames_written(tmp_path, frames, codec, suffix):
    if not available(codec):
        pytest.skip(f"this PyAV build has no {CODECS[codec][0]} encoder")
    path = write_video(tmp_path / f"v{suffix}", frames[:60], codec)
    info = probe(path)
    assert (info.width, info.height, info.codec) == (WIDTH, HEIGHT, codec)
    assert info.fps == pytest.approx(FPS)
    decoded = list(iter_frames(path))
    assert [f.index for f in decoded] == list(range(60))
    assert [f.time for f in decoded] == pytest.approx([i / FPS for i in range(60)], abs=1e-6)
    error = np.mean([np.abs(f.image.astype(int) - frames[f.index]).mean() for f in decoded])
    assert error < 20  # lossy (mpeg4 14, the others 6-8), but the same pictures: 3 frames off is 32, BGR 64
    picked = list(iter_frames(path, [59, 3, 3, 30]))
    assert [f.index for f in picked] == [3, 30, 59]
    assert all(np.array_equal(p.image, decoded[p.index].image) for p in picked)


def test_variable_frame_rate_times_come_from_the_timestamps(tmp_path, frames):
    pts = [0, 40, 80, 200, 210, 220, 500, 540, 1000, 1040]
    path = write_video(tmp_path / "vfr.mp4", frames[:10], pts_ms=pts)
    assert [f.time for f in iter_frames(path)] == pytest.approx([p / 1000 for p in pts], abs=1e-6)


def test_frames_are_scaled_as_asked(video):
    (f,) = iter_frames(video, [7], size=(48, 27))
    assert f.image.shape == (27, 48, 3) and f.image.dtype == np.uint8


def test_broken_inputs_are_one_line_errors(tmp_path, video):
    cases = {
        "empty.mp4": b"",
        "text.mp4": b"this is not a video\n" * 50,
        "truncated.mp4": video.read_bytes()[: video.stat().st_size // 2],
    }
    for name, data in cases.items():
        (tmp_path / name).write_bytes(data)
    write_audio(tmp_path / "audio.mp4")
    expected = {
        "empty.mp4": "is empty",
        "text.mp4": "not a video file",
        "truncated.mp4": "corrupt or truncated|truncated|not a video file",
        "audio.mp4": "has no video stream",
    }
    for name, message in expected.items():
        with pytest.raises(InputError, match=message) as e:
            list(iter_frames(tmp_path / name))
        assert "\n" not in str(e.value) and name in str(e.value)
    with pytest.raises(InputError, match="frame 400 was asked for"):
        list(iter_frames(video, [10, 400]))


# --- shots ---


@pytest.fixture(scope="module")
def transnet():
    return TransNetV2Detector()


def starts(shots):
    return [s.start_frame for s in shots]


def assert_cuts_within_one_frame(found, expected):
    assert len(found) == len(expected), (found, expected)
    assert max(abs(a - b) for a, b in zip(found, expected)) <= 1, (found, expected)


def test_transnetv2_finds_the_cuts(transnet, video):
    shots = transnet.detect_video(video)
    assert_cuts_within_one_frame(starts(shots)[1:], cuts_of(LENGTHS))
    assert shots[0].start_frame == 0 and shots[-1].end_frame == sum(LENGTHS) - 1
    assert shots[1].start_time == pytest.approx(shots[1].start_frame / FPS)


def test_transnetv2_keeps_the_global_random_state():
    torch.manual_seed(7)
    np.random.seed(7)
    random.seed(7)
    deterministic = torch.are_deterministic_algorithms_enabled()
    expected = (torch.rand(3), np.random.rand(3), random.random())
    torch.manual_seed(7)
    np.random.seed(7)
    random.seed(7)
    TransNetV2Detector()
    assert torch.equal(torch.rand(3), expected[0])
    assert np.array_equal(np.random.rand(3), expected[1]) and random.random() == expected[2]
    assert torch.are_deterministic_algorithms_enabled() == deterministic


def test_content_detector_finds_the_cuts(video):
    shots = ContentShotDetector().detect_video(video)
    assert_cuts_within_one_frame(starts(shots)[1:], cuts_of(LENGTHS))


def test_shots_and_keyframes():
    times = [i / 25 for i in range(100)]
    shots = shots_from_cuts([10, 11, 60], times)
    assert [(s.start_frame, s.end_frame) for s in shots] == [(0, 9), (10, 10), (11, 59), (60, 99)]
    assert shots[2].end_time == pytest.approx(59 / 25)
    assert [middle_frame(s) for s in shots] == [5, 10, 35, 80]
    assert uniform_frames(shots[2], 1) == [35]
    assert uniform_frames(shots[2], 4) == [17, 29, 41, 53]
    assert uniform_frames(shots[1], 3) == [10, 10, 10]  # a one-frame shot repeats its frame


def test_msb_round_trip(tmp_path):
    shots = [Shot(0, 39, 0.0, 1.56), Shot(40, 94, 1.6, 3.76), Shot(95, 299, 3.8, 11.96)]
    path = tmp_path / "07480.tsv"
    write_msb(path, shots)
    lines = path.read_text().splitlines()
    assert lines[0] == "startframe\tstarttime\tendframe\tendtime" and lines[2] == "40\t1.6\t94\t3.76"
    assert read_msb(path) == shots
    with pytest.raises(InputError, match="already exists"):
        write_msb(path, shots)


@pytest.mark.parametrize(
    "text, message",
    [
        ("", "is empty"),
        ("startframe\tstarttime\tendframe\tendtime\n", "has no shots"),
        ("start\tend\n0\t9\n", "expected the header"),
        ("startframe\tstarttime\tendframe\tendtime\n0\t0.0\t9\n", ":2: expected 4 columns"),
        ("startframe\tstarttime\tendframe\tendtime\n0\t0.0\tnine\t0.36\n", "endframe 'nine' is not a frame"),
        ("startframe\tstarttime\tendframe\tendtime\n0\t0.0\t9\tnan\n", "endtime 'nan' is not a time"),
        ("startframe\tstarttime\tendframe\tendtime\n10\t0.4\t9\t0.36\n", "is before startframe"),
        ("startframe\tstarttime\tendframe\tendtime\n0\t0\t9\t0.36\n5\t0.2\t20\t0.8\n", ":3: startframe 5 is not after"),
    ],
)
def test_malformed_msb_files(tmp_path, text, message):
    path = tmp_path / "x.tsv"
    path.write_text(text)
    with pytest.raises(InputError, match=message):
        read_msb(path)


# --- the pipeline ---


@pytest.fixture(scope="module")
def extracted(tmp_path_factory, video):
    tmp = tmp_path_factory.mktemp("x")
    cfg = config(shots="content", frames_per_shot=3, thumbs=tmp / "thumbs", msb_out=tmp / "msb")
    result = extract([video], tmp / "store.h5", cfg, progress=False)
    return tmp, result


def test_store_holds_the_middle_frames_and_spread_frames(extracted, video):
    tmp, result = extracted
    assert (result.videos, result.shots, result.skipped) == (1, 6, [])
    with open_store(result.store) as st:
        assert st.ids == [f"shot07480_{n}" for n in range(1, 7)]
        clip = st.get("clip")
        frames, mask = st.frames("clip_frames")
    assert clip.shape == (6, 32) and frames.shape == (6, 3, 32) and mask.all()
    shots = read_msb(tmp / "msb" / "07480.tsv")
    encoder = load_encoder(config())
    wanted = [[middle_frame(s), *uniform_frames(s, 3)] for s in shots]
    images = {f.index: f.image for f in iter_frames(video, {i for w in wanted for i in w})}
    with torch.no_grad():
        expected = encoder(torch.stack([preprocess_array(images[i], 32) for w in wanted for i in w])).numpy()
    expected = expected.reshape(6, 4, 32)
    np.testing.assert_allclose(clip, expected[:, 0], atol=1e-5)
    np.testing.assert_allclose(frames, expected[:, 1:], atol=1e-5)


def test_store_records_how_it_was_made(extracted):
    _, result = extracted
    with h5py.File(result.store) as f:
        meta = json.loads(f.attrs["meta"])
    settings = meta["extract"]
    assert settings["shots"] == "content" and settings["frames_per_shot"] == 3
    assert settings["architecture"]["width"] == 64 and settings["architecture"]["heads"] == 2
    import hashlib

    assert settings["checkpoint_sha256"] == hashlib.sha256(CKPT.read_bytes()).hexdigest()


def test_thumbnails_are_the_middle_frames(extracted):
    from PIL import Image

    tmp, _ = extracted
    thumbs = sorted(p.name for p in (tmp / "thumbs").iterdir())
    assert thumbs == sorted(f"shot07480_{n}_RKF.jpg" for n in range(1, 7))
    assert Image.open(tmp / "thumbs" / "shot07480_1_RKF.jpg").size == (WIDTH, HEIGHT)


def test_msb_out_read_back_gives_the_same_store(extracted, video, tmp_path):
    tmp, first = extracted
    again = extract([video], tmp_path / "s.h5", config(msb_dir=tmp / "msb", frames_per_shot=3), progress=False)
    with open_store(first.store) as a, open_store(again.store) as b:
        assert a.ids == b.ids
        np.testing.assert_array_equal(a.get("clip"), b.get("clip"))


def test_an_interrupted_extraction_resumes(tmp_path, frames, monkeypatch):
    videos = [write_video(tmp_path / f"{v:05d}.mp4", frames[40 * v : 40 * v + 80]) for v in (1, 2, 3)]
    whole = extract(videos, tmp_path / "whole.h5", config(shots="content"), progress=False)
    keep = pipeline._keep
    calls = []

    def keep_then_stop(path, shots, emb):
        calls.append(path)
        if len(calls) == 2:
            raise KeyboardInterrupt
        keep(path, shots, emb)

    monkeypatch.setattr(pipeline, "_keep", keep_then_stop)
    with pytest.raises(KeyboardInterrupt):
        extract(videos, tmp_path / "s.h5", config(shots="content"), progress=False)
    assert not (tmp_path / "s.h5").exists()
    assert sorted(p.name for p in (tmp_path / "s.h5.extract").glob("*.npz")) == ["00001.npz"]
    monkeypatch.setattr(pipeline, "_keep", keep)
    with pytest.raises(InputError, match="other settings"):
        extract(videos, tmp_path / "s.h5", config(shots="content", frames_per_shot=2), progress=False)
    resumed = extract(videos, tmp_path / "s.h5", config(shots="content"), progress=False)
    assert resumed.resumed == 1 and resumed.videos == 3
    assert not (tmp_path / "s.h5.extract").exists()
    with open_store(whole.store) as a, open_store(resumed.store) as b:
        assert a.ids == b.ids and a.ids[0].startswith("shot00001_")
        np.testing.assert_array_equal(a.get("clip"), b.get("clip"))


def test_bad_videos_are_skipped_and_named(tmp_path, video, frames, run_cli):
    folder = tmp_path / "videos"
    folder.mkdir()
    (folder / "00001.mp4").write_bytes(video.read_bytes())
    (folder / "00002.mp4").write_bytes(b"")
    (folder / "00003.mp4").write_text("not a video\n")
    (folder / "00004.mp4").write_bytes(video.read_bytes()[: video.stat().st_size // 3])
    write_audio(folder / "00005.mp4")
    write_video(folder / "00006.webm", frames[:100], "vp9")
    msb = tmp_path / "msb"
    write_msb(msb / "00001.tsv", read_msb_of(video))
    write_msb(msb / "00006.tsv", read_msb_of(video))  # 300 frames of shots for a 100-frame video
    for v in ("00002", "00003", "00004", "00005"):
        write_msb(msb / f"{v}.tsv", [Shot(0, 9, 0.0, 0.36)])
    out = tmp_path / "s.h5"
    r = run_cli("extract", folder, "--out", out, "--checkpoint", CKPT, "--clip-config", ARCH, "--msb", msb, "-q")
    assert r.exit_code == 1, r.output
    assert "1 videos, 6 shots" in r.stdout
    skipped = [line.strip() for line in r.stderr.splitlines() if line.startswith("  ")]
    assert [s.split(":")[0] for s in skipped] == ["00002", "00003", "00004", "00005", "00006"]
    assert "is empty" in skipped[0] and "not a video file" in skipped[1] and "no video stream" in skipped[3]
    assert "does not match the video" in skipped[4]
    with open_store(out) as st:
        assert len(st.ids) == 6 and st.ids[0] == "shot00001_1"


def read_msb_of(video):
    return ContentShotDetector().detect_video(video)


def test_usage_errors(tmp_path, video, run_cli):
    base = ("extract", video, "--out", tmp_path / "s.h5")
    r = run_cli(*base, "--checkpoint", tmp_path / "nope.pt")
    assert r.exit_code == 2 and "nope.pt: no such file" in r.stderr
    r = run_cli(*base, "--checkpoint", CKPT, "--shots", "msb")
    assert r.exit_code == 2 and "give --msb DIR" in r.stderr
    r = run_cli("extract", tmp_path / "missing.mp4", "--out", tmp_path / "s.h5", "--checkpoint", CKPT)
    assert r.exit_code == 2 and "missing.mp4: no such file or folder" in r.stderr
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    write_video(tmp_path / "a" / "1.mp4", cut_frames([10]))
    write_video(tmp_path / "b" / "1.mp4", cut_frames([10]))
    with pytest.raises(InputError, match="has the video id '1'"):
        list_videos([tmp_path / "a", tmp_path / "b"])
    r = run_cli(*base, "--checkpoint", tmp_path / "a" / "1.mp4")
    assert r.exit_code == 2 and "\n" not in r.stderr.strip()


def test_msb_out_never_replaces_shot_files_unasked(extracted, video, tmp_path):
    tmp, _ = extracted
    with pytest.raises(InputError, match="07480.tsv: already exists"):
        extract([video], tmp_path / "s.h5", config(shots="content", msb_out=tmp / "msb"), progress=False)
    with pytest.raises(InputError, match="is the --msb folder"):
        extract([video], tmp_path / "s.h5", config(msb_dir=tmp / "msb", msb_out=tmp / "msb"), progress=False)
    assert not (tmp_path / "s.h5").exists()


def test_inputs_are_never_outputs(tmp_path, video, run_cli):
    own = tmp_path / "00009.mp4"
    own.write_bytes(video.read_bytes())
    (tmp_path / "list.txt").write_text(f"{own}\n")
    ckpt = tmp_path / "ck.pt"
    ckpt.write_bytes(CKPT.read_bytes())
    for out, first in [(own, own), (tmp_path / "list.txt", tmp_path / "list.txt"), (ckpt, own)]:
        r = run_cli(
            "extract", first, "--out", out, "--checkpoint", ckpt, "--clip-config", ARCH, "--shots", "content", "--force"
        )  # fmt: skip
        assert r.exit_code == 2 and "is also an input of this command" in r.stderr, r.output
    assert own.read_bytes() == video.read_bytes() and ckpt.read_bytes() == CKPT.read_bytes()
    (tmp_path / "bin.txt").write_bytes(b"\x00\xa0\xff" * 50)
    r = run_cli("extract", tmp_path / "bin.txt", "--out", tmp_path / "s.h5", "--checkpoint", CKPT)
    assert r.exit_code == 2 and "bin.txt:1: not UTF-8 text" in r.stderr
    r = run_cli("extract", own, "--out", tmp_path / "s.h5", "--checkpoint", CKPT, "--msb", tmp_path / "nomsb")
    assert r.exit_code == 2 and "nomsb: no such folder" in r.stderr


def test_list_files_name_videos_relative_to_themselves(tmp_path, video):
    (tmp_path / "list.txt").write_text(f"# V3C1 part\n{video}\n\n")
    assert list_videos([tmp_path / "list.txt"]) == [video]


# --- from a raw video to an evaluated run ---


def test_a_generated_video_goes_through_extract_search_and_eval(tmp_path, tiny_bpe, run_cli):
    """60 s at 25 fps with 16 hard cuts -> avs extract -> avs model clip -> avs index -> avs search -> avs eval
    infap, the run checked against a brute-force ranking of the stored features and its infAP against AP computed
    here (every shot judged, so inferred AP is plain AP)."""
    from avs.models.clip_text import ClipTextEncoder

    lengths = [60, 105, 80, 95, 70, 110, 85, 75, 100, 90, 65, 120, 80, 95, 85, 100, 85]  # 17 scenes, 1500 frames
    assert sum(lengths) == 1500 and len(lengths) == 17
    video = write_video(tmp_path / "00042.mp4", cut_frames(lengths))
    store, model, index = tmp_path / "v.h5", tmp_path / "clip", tmp_path / "v.clip.h5"
    r = run_cli(
        "extract", video, "--out", store, "--checkpoint", CKPT, "--clip-config", ARCH, "--shots", "content", "-q"
    )
    assert r.exit_code == 0, r.output
    with open_store(store) as st:
        ids, feats = st.ids, st.get("clip")
    assert ids == [f"shot00042_{n}" for n in range(1, 18)]
    r = run_cli("model", "clip", CKPT, "--bpe", tiny_bpe, "--out", model, "--clip-config", ARCH)
    assert r.exit_code == 0, r.output
    assert run_cli("index", "--model", model, "--collection", store, "--out", index).exit_code == 0
    topics = {"1": "the dog", "2": "a cat", "3": "the cat and the dog"}
    (tmp_path / "topics.txt").write_text("".join(f"{n} {t}\n" for n, t in topics.items()))
    run = tmp_path / "run.xml"
    r = run_cli(
        "search", "--topics", tmp_path / "topics.txt", "--model", model, "--index", index, "--out", run,
        "--year", "2024", "--pid", "test",
    )  # fmt: skip
    assert r.exit_code == 0, r.output

    text = ClipTextEncoder.from_checkpoint(CKPT, tiny_bpe, heads=2, quick_gelu=False)
    v = feats / np.linalg.norm(feats, axis=1, keepdims=True)
    relevant = {"1": {1, 4, 9, 16}, "2": {2, 3, 12}, "3": {5, 6, 7, 8, 13}}  # shot numbers, invented judgments
    qrels = tmp_path / "qrels"
    qrels.write_text("".join(f"1{t} 0 shot00042_{n} 1 {int(n in relevant[t])}\n" for t in topics for n in range(1, 18)))
    expected_ap = {}
    for t, query in topics.items():
        q = torch.nn.functional.normalize(text.encode([query]), dim=-1).numpy()[0].astype(np.float64)
        scores = v.astype(np.float16).astype(np.float64) @ q  # the index keeps float16 rows
        order = np.lexsort((-np.arange(17), -scores))  # ties: the higher shot id first
        ranked = [int(i) + 1 for i in order]
        hits = [k for k, n in enumerate(ranked, 1) if n in relevant[t]]
        expected_ap[t] = np.mean([(j + 1) / k for j, k in enumerate(hits)])
    r = run_cli("eval", "infap", run, "--qrels", qrels, "--per-query", "--format", "json")
    assert r.exit_code == 0, r.output
    measured = json.loads(r.stdout)
    per_topic = {row["topic"]: row["value"] for row in measured if row["measure"] == "infAP"}
    per_topic = {t: per_topic[t] for t in ("11", "12", "13")}  # the others are the means (all, per label)
    assert per_topic == pytest.approx({f"1{t}": ap for t, ap in expected_ap.items()}, abs=5e-5)
