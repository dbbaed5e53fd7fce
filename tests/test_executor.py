"""The local (process pool) and Ray executors give the same bytes: shards built, shards searched, videos
extracted. Ray runs as a local cluster of 2 CPUs started here and shut down after (bounded: a few small tasks)."""

import numpy as np
import pytest

from avs.engine.executor import Executor
from avs.engine.searcher import Searcher
from avs.engine.shards import _search_shard, build_sharded_index, open_searchable
from avs.errors import InputError
from avs.extract.pipeline import ExtractConfig, extract
from avs.formats.store import open_store

from conftest import TINY_CLIP
from test_search import WORDS, tiny_model_dir, tiny_store
from videos import cut_frames, write_video

LOCAL = Executor("local", workers=2)
RAY = Executor("ray", workers=2)


@pytest.fixture(scope="module", autouse=True)
def ray_cluster(tmp_path_factory):
    import ray

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("RAY_AUTH_MODE", "disabled")  # no token written to the home folder
        mp.delenv("RAY_ADDRESS", raising=False)
        ray.init(
            num_cpus=2,
            include_dashboard=False,
            log_to_driver=False,
            object_store_memory=256 * 2**20,
            _temp_dir=str(tmp_path_factory.mktemp("ray")),
        )
        yield
        ray.shutdown()


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("ex")
    model = tiny_model_dir(tmp / "model")
    tiny_store(tmp / "store.h5", n=900)
    return tmp, model


def test_shards_built_and_searched_alike(base, tmp_path):
    tmp, model = base
    outs = {}
    for name, ex in (("local", LOCAL), ("ray", RAY)):
        outs[name] = build_sharded_index(
            model, tmp / "store.h5", tmp_path / f"{name}.json", 4, batch_size=128, progress=False, executor=ex
        )
    a, b = open_searchable(outs["local"]), open_searchable(outs["ray"])
    for x, y in zip(a.shards, b.shards, strict=True):
        assert x.ids == y.ids and np.asarray(x.embeddings[()]).tobytes() == np.asarray(y.embeddings[()]).tobytes()
    here = Searcher(model, outs["local"])
    for ex in (LOCAL, RAY):
        spread = Searcher(model, outs["ray"], executor=ex)
        for q in WORDS:
            h, s = here.query(q, 500), spread.query(q, 500)
            assert h.shots == s.shots and h.scores.tobytes() == s.scores.tobytes()


def test_videos_extracted_alike(tmp_path):
    videos = [write_video(tmp_path / f"{v:05d}.mp4", cut_frames([20 + v, 30, 25 - v])) for v in (1, 2, 3)]
    (tmp_path / "bad.mp4").write_text("not a video")
    videos.append(tmp_path / "bad.mp4")
    cfg = ExtractConfig(checkpoint=TINY_CLIP / "model.pt", clip_config=TINY_CLIP / "tiny-vit.json", shots="content")
    cfg_k = ExtractConfig(**{**cfg.__dict__, "frames_per_shot": 2})
    stores = {}
    for name, ex in (("local", LOCAL), ("ray", RAY)):
        r = extract(videos, tmp_path / f"{name}.h5", cfg_k, progress=False, executor=ex)
        assert r.videos == 3 and [s.video for s in r.skipped] == ["bad"] and "not a video" in r.skipped[0].reason
        stores[name] = r.store
    with open_store(stores["local"]) as a, open_store(stores["ray"]) as b:
        assert a.ids == b.ids and len(a.ids) == 9
        assert a.get("clip").tobytes() == b.get("clip").tobytes()
        assert a.frames("clip_frames")[0].tobytes() == b.frames("clip_frames")[0].tobytes()


def test_user_errors_in_workers_are_one_line(base, tmp_path):
    tmp, model = base
    queries = np.zeros((1, 32), np.float32)
    for ex in (LOCAL, RAY):
        with pytest.raises(InputError, match="missing.h5: no such file"):
            ex.map(_search_shard, [(tmp_path / "missing.h5", queries, 10, [])])
    with pytest.raises(InputError, match="--executor 'spark'"):
        Executor("spark")
