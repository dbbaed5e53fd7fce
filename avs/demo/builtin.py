"""The built-in demo: a SIMULATED collection (avs.demo.synth), a LAFF model trained on its captions, its index and
its judgments — built deterministically on first use, so that ``avs search --topics topics/tv20.xml`` works on a
fresh install. Nothing in it is real video data; every output that uses it says so.
"""

from __future__ import annotations

import json
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from avs import __version__
from avs.errors import InputError
from avs.formats.fileio import atomic_dir

DEMO_VERSION = 1
SHOTS = 10_000
SEED = 0
CONFIG = "sim_laff"
EPOCHS = 12
LR = 3e-4
MODEL_NAME = "demo_laff"  # the run id of a demo search starts with it
# The pid (and TREC tag) of every run searched on the demo: it is how `avs eval` knows that a run may be scored
# against the demo's simulated judgments. Its shot ids look like V3C1's, so they cannot tell.
DEMO_PID = "SIMULATED-demo"


@dataclass(frozen=True)
class Demo:
    root: Path

    @property
    def collection(self) -> Path:
        return self.root / "collection"

    @property
    def store(self) -> Path:
        return self.collection / "store.h5"

    @property
    def qrels(self) -> Path:
        return self.collection / "qrels" / "avs.qrels.sim"

    @property
    def model(self) -> Path:
        return self.root / MODEL_NAME

    @property
    def index(self) -> Path:
        return self.root / f"{MODEL_NAME}.index.h5"

    @property
    def manifest(self) -> Path:
        return self.root / "demo.json"

    def ready(self) -> bool:
        try:
            return json.loads(self.manifest.read_text()).get("demo_version") == DEMO_VERSION
        except (OSError, ValueError):
            return False


def default_root() -> Path:
    """``$AVS_DEMO_DIR``, else ``$XDG_CACHE_HOME/avs/demo-v<N>`` (``~/.cache/avs/...``)."""
    if os.environ.get("AVS_DEMO_DIR"):
        return Path(os.environ["AVS_DEMO_DIR"])
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return cache / "avs" / f"demo-v{DEMO_VERSION}"


def build(root: str | os.PathLike | None = None, force: bool = False, progress: bool = True) -> Demo:
    """Build the demo from scratch into ``root`` (written beside it, renamed into place when complete)."""
    from avs.demo.synth import write_collection
    from avs.engine.index import build_index
    from avs.train.loop import open_data, train

    demo = Demo(Path(root) if root is not None else default_root())
    if demo.root.exists():
        if not _is_demo(demo):  # whatever else the folder holds is not ours to delete
            raise InputError(demo.root, "exists and is not an avs demo folder; choose another place")
        if not force:
            raise InputError(demo.root, "already exists (use --force to rebuild)")
    with atomic_dir(demo.root, force=True) as tmp:
        work = Demo(tmp)
        times = {}
        t = time.perf_counter()
        write_collection(work.collection, SHOTS, seed=SEED, force=True, progress=progress)
        times["simulate"] = time.perf_counter() - t
        t = time.perf_counter()
        train_data = open_data(work.collection / "simtrain", _config(), store=work.store)
        val_data = open_data(work.collection / "simval", _config(), store=work.store)
        train(_config(), train_data, val_data, work.model, epochs=EPOCHS, lr=LR, seed=SEED, progress=progress)
        times["train"] = time.perf_counter() - t
        t = time.perf_counter()
        build_index(work.model, work.store, work.index, progress=progress)
        times["index"] = time.perf_counter() - t
        work.manifest.write_text(
            json.dumps(
                {
                    "demo_version": DEMO_VERSION,
                    "avs_version": __version__,
                    "simulated": True,
                    "shots": SHOTS,
                    "seed": SEED,
                    "config": CONFIG,
                    "epochs": EPOCHS,
                    "lr": LR,
                    "seconds": times,
                },
                indent=2,
            )
            + "\n"
        )
    return demo


def _is_demo(demo: Demo) -> bool:
    try:
        return json.loads(demo.manifest.read_text()).get("simulated") is True
    except (OSError, ValueError):
        return not any(demo.root.iterdir())  # an empty folder may be used


def _config():
    from avs.models import load_config

    return load_config(CONFIG)


def ensure(root: str | os.PathLike | None = None) -> Demo:
    """The demo, built first if this machine does not have it yet."""
    demo = Demo(Path(root) if root is not None else default_root())
    if not demo.ready():
        print(
            f"avs: building the SIMULATED demo collection in {demo.root} (first use, about a minute)", file=sys.stderr
        )
        build(demo.root, force=True)
    return demo


def is_demo_run(path: str | os.PathLike) -> bool:
    """True when the run file says it was searched on the demo (its pid or TREC tag is ``DEMO_PID``).

    Only the head of the file is read, so a real run of any size is told apart at once.
    """
    from trec_eval_compat import io as tio
    from trec_eval_compat import runxml, xmlsafe

    if tio.looks_like_xml(path):
        with tio.open_binary(path) as f:
            for event, el in xmlsafe.iterparse(f, path):
                if event == "start" and xmlsafe.localname(el) == runxml.RUN:
                    return el.get("pid") == DEMO_PID
        return False
    try:
        with tio.open_text(path) as f:
            for line in f:
                if line.strip():
                    return line.split()[-1] == DEMO_PID
    except (UnicodeDecodeError, OSError, EOFError):
        return False  # not a demo run; the evaluator names what is wrong once it is given --qrels
    return False


def demo_qrels(runs) -> Path:
    """The demo's simulated judgments, for runs that were all searched on the demo; else an InputError, so that
    a real run is never scored against simulated judgments (nor the demo built for it)."""
    for r in runs:
        if not is_demo_run(r):
            raise InputError(
                r,
                f"not a run of the SIMULATED demo collection (its pid is not {DEMO_PID}): "
                "give NIST's judgments with --qrels",
            )
    return ensure().qrels


def demo_paths() -> tuple[Path, Path]:
    """(model directory, index) of the demo, building it on first use."""
    demo = ensure()
    return demo.model, demo.index


@dataclass
class Report:
    """What ``avs demo`` prints: the demo LAFF on tv20 (SIMULATED data) and where its attention goes."""

    evaluation: object  # trec_eval_compat Evaluation of the tv20 run
    label_means: object  # DataFrame from avs.eval.infap.label_means
    attention: dict[str, float]  # mean video-side attention weight per feature over the collection
    manifest: dict


def report(demo: Demo, topics: str | os.PathLike | None = None) -> Report:
    import numpy as np

    from avs.engine.encode import encode_batch
    from avs.engine.searcher import search_topics
    from avs.eval.infap import label_means, load_labels
    from avs.formats.runs import RunInfo, run_lines
    from avs.formats.store import open_store
    from avs.formats.topics import shipped_dir
    from avs.models import load_model
    from trec_eval_compat.evaluate import evaluate

    topics = topics or shipped_dir() / "tv20.xml"
    res = search_topics(topics, demo.model, demo.index, info=RunInfo(pid=DEMO_PID))
    ev = evaluate(demo.qrels, run_lines(res.run))
    loaded = load_model(demo.model)
    store = open_store(demo.store)
    names = [f.name for f in loaded.config.video]
    feats = {n: store.get(n, dtype=np.float32) for n in names}
    _, weights = encode_batch(lambda f: loaded.model.encode_video(f, return_weights=True), (feats,))
    mean = weights.mean(dim=(0, 1)).tolist()
    return Report(
        ev,
        label_means({"demo LAFF": ev}, load_labels(None)),
        dict(zip(names, mean)),
        json.loads(demo.manifest.read_text()),
    )
