"""Training throughput of the paper's LAFF (captions/s): forward, backward, grad-norm clip and RMSprop step.

Inputs are SIMULATED (random): video clip_ft 512, tf 768, x3d 2048, ircsn 2048; text gru ids (vocabulary
4096, 12-20 tokens), bow counts (vocabulary 3981), w2v 500, clip 512; H = 8, D = 4096 (49,256,464 trainable
parameters). Featurization and data loading are not timed. Runs on the CPU, and on CUDA when available.

    python bench/train_step.py [--batch-size 64] [--steps 5] [--threads N] [--repeats 3]
    python bench/train_step.py --official /path/to/LAFF

Without --official, the step with torch's RMSprop and with avs's (the same arithmetic, in place) are measured
alternately in one run. With --official, a checkout of github.com/ruc-aimc-lab/LAFF is imported from that path at
run time (nothing of it is copied into avs) and its training step, W2VVPP.forward of the paper's model (config
laff, parm 0_12_0_12_0_0_1: forward, zero_grad, the per-space triplet loss, backward, clip_grad_norm_ 2, RMSprop
lr 1e-4), is measured alternately with avs's on the same simulated batch, on the CPU. The official text encoders
featurize caption strings inside the step: here they look the batch's rows up instead (no tokenizing, no word2vec
file), keeping their per-caption loops and numpy copies; the frozen CLIP text tower, which training bypasses with
precomputed CLIP features, is not loaded. Modules the official code imports but this step never uses (six,
transformers, nltk) are stubbed when missing.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import importlib.util
import io
import logging
import subprocess
import sys
import time
import types
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
import numpy as np  # noqa: E402
import torch  # noqa: E402
from _machine import describe  # noqa: E402

from avs.models import TextVideoModel, count_parameters, load_config  # noqa: E402
from avs.train.optim import RMSprop  # noqa: E402


def make_batch(cfg, batch: int, gen: torch.Generator) -> tuple[dict, dict]:
    dims = {f.name: f.dim for f in cfg.text}
    lengths = torch.randint(12, 21, (batch,), generator=gen)
    ids = torch.randint(4, dims["gru"], (batch, int(lengths.max())), generator=gen)
    ids[torch.arange(ids.shape[1]) >= lengths[:, None]] = 0
    bow = (torch.rand(batch, dims["bow"], generator=gen) < 2e-3).float()
    text = {
        "gru_ids": ids,
        "gru_lengths": lengths,
        "bow": bow,
        "w2v": torch.randn(batch, 500, generator=gen),
        "clip": torch.randn(batch, 512, generator=gen),
    }
    video = {f.name: torch.randn(batch, f.dim, generator=gen) for f in cfg.video}
    return text, video


def paper_config():
    return load_config("laff").with_dims(text={"gru": 4096, "bow": 3981})


OPTIMIZERS = {"torch RMSprop": torch.optim.RMSprop, "avs RMSprop (in place)": RMSprop}


def bench(device: str, batch: int, steps: int, optimizer: str = "avs RMSprop (in place)") -> float:
    torch.manual_seed(0)
    cfg = paper_config()
    model = TextVideoModel(cfg).to(device).train()
    params = [p for p in model.parameters() if p.requires_grad]
    opt = OPTIMIZERS[optimizer](params, lr=1e-4)
    text, video = make_batch(cfg, batch, torch.Generator().manual_seed(0))
    text = {k: v if k == "gru_lengths" else v.to(device) for k, v in text.items()}
    video = {k: v.to(device) for k, v in video.items()}

    def step():
        loss = model.loss(model.encode_text(text), model.encode_video(video))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 2.0)
        opt.step()
        if device.startswith("cuda"):
            torch.cuda.synchronize()

    step()  # warm-up: allocations, kernel selection, optimizer state
    return timed(step, batch, steps, f"{device}, {optimizer}: {count_parameters(model)} trainable parameters")


def timed(step, batch: int, steps: int, label: str) -> float:
    """Captions/s of ``steps`` calls of a warmed-up ``step``, printed with its matrix-product GFLOP."""
    gflop = step_gflop(step)
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    seconds = time.perf_counter() - t0
    print(
        f"{label}, batch {batch}, {steps} steps: {seconds / steps:.3f} s/step, {batch * steps / seconds:.1f} "
        f"captions/s; {gflop:.1f} GFLOP of matrix products a step ({gflop * steps / seconds:.0f} GFLOP/s)",
        flush=True,
    )
    return batch * steps / seconds


# ----------------------------------------------------------------------------------------------------------
# The official LAFF (github.com/ruc-aimc-lab/LAFF), imported from a checkout at run time

# the checkout's top-level modules that model/model.py and configs/laff.py pull in
_OFFICIAL_TOP = (
    "model",
    "configs",
    "common",
    "util",
    "loss",
    "bigfile",
    "generic_utils",
    "evaluation",
    "textlib",
    "txt2vec",
)
PAPER_PARM = "0_12_0_12_0_0_1"  # shell/laff_AllRun.sh: clip+tf+x3d+ircsn, bow+w2v+gru+clip, LAFF (type 12) both sides


def _stub(name: str, **attrs) -> types.ModuleType:
    module = types.ModuleType(name)
    module.__dict__.update(attrs)
    return module


def _unused(name: str):
    def fail(*args, **kwargs):
        raise RuntimeError(f"{name} is a stub of bench/train_step.py: the official training step should not use it")

    return fail


def import_official(path: Path) -> types.SimpleNamespace:
    """The official ``model.model`` and ``configs.laff`` modules, imported from the checkout at ``path``.

    Everything the import puts in ``sys.modules`` under the checkout's generic names (model, util, loss, ...) and
    every stub is taken out again afterwards, and modules of those names imported before are put back, so the rest
    of the process sees nothing of it. The stubs: ``model.clip`` always (the real one imports torchvision and
    downloads CLIP ViT-B/32; the step uses precomputed CLIP text features), six, transformers and nltk where
    missing (used by code paths the step never reaches)."""
    if not (path / "model" / "model.py").is_file() or not (path / "configs" / "laff.py").is_file():
        sys.exit(f"--official {path}: not a ruc-aimc-lab/LAFF checkout (no model/model.py, configs/laff.py)")

    def ours(name: str) -> bool:
        return name.split(".")[0] in _OFFICIAL_TOP

    displaced = {name: sys.modules.pop(name) for name in list(sys.modules) if ours(name)}
    stubs = {}
    if importlib.util.find_spec("six") is None:
        stubs["six"] = _stub("six", string_types=(str,))
    if importlib.util.find_spec("transformers") is None:
        stubs["transformers"] = _stub(
            "transformers", BertTokenizer=_unused("BertTokenizer"), BertModel=_unused("BertModel")
        )
    if importlib.util.find_spec("nltk") is None:
        nltk_names = ("word_tokenize", "pos_tag", "WordNetLemmatizer", "stopwords", "wordnet")
        stubs["nltk"] = _stub("nltk", **{n: _unused(f"nltk.{n}") for n in nltk_names})
        stubs["nltk.stem"] = _stub("nltk.stem", WordNetLemmatizer=_unused("nltk.stem.WordNetLemmatizer"))
        stubs["nltk.corpus"] = _stub("nltk.corpus", stopwords=_unused("stopwords"), wordnet=_unused("wordnet"))
    clip = _stub(
        "model.clip",
        # CLIPEncoder.__init__: ClipModel, preprocess = clip.load(...); an empty module (no parameters)
        load=lambda *args, **kwargs: (torch.nn.Module(), None),
        tokenize=_unused("clip.tokenize"),
        simple_tokenizer=types.SimpleNamespace(SimpleTokenizer=lambda: None),
    )
    # model/ has no __init__.py: make it a package at this path, whatever else sys.path holds
    stubs["model"] = _stub("model", __path__=[str(path / "model")], __package__="model", clip=clip)
    stubs["model.clip"] = clip

    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    sharing = torch.multiprocessing.get_sharing_strategy()
    sys.modules.update(stubs)
    sys.path.insert(0, str(path))
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            mod = importlib.import_module("model.model")
            laff = importlib.import_module("configs.laff")
    finally:
        sys.path.remove(str(path))
        for name in [n for n in sys.modules if ours(n) or n in stubs]:
            del sys.modules[name]
        sys.modules.update(displaced)
        # common.py, util.py and textlib.py call logging.basicConfig; common.py sets the tensor sharing strategy
        root.handlers[:] = handlers
        root.setLevel(level)
        torch.multiprocessing.set_sharing_strategy(sharing)
    return types.SimpleNamespace(model=mod, laff=laff, path=path, commit=_commit(path))


def _commit(path: Path) -> str:
    """The checkout's commit (and whether it has local changes), or "commit unknown" if it is not a git checkout."""

    def git(*args: str) -> str:
        return subprocess.run(
            ["git", "-C", str(path), *args], capture_output=True, text=True, check=True, timeout=30
        ).stdout.strip()

    try:
        if Path(git("rev-parse", "--show-toplevel")).resolve() != path.resolve():
            return "commit unknown"
        commit = git("rev-parse", "HEAD")
        dirty = git("status", "--porcelain", "--untracked-files=no")
    except (OSError, subprocess.SubprocessError):
        return "commit unknown"
    return f"commit {commit}" + (" with local changes" if dirty else "")


class _Rows:
    """Stands in for an official featurizer (txt2vec IndexVec, BowVecNSW, W2VecNSW): ``encoding(caption)`` returns
    the caption's row of the simulated batch instead of tokenizing it and looking words up (or reading word2vec
    from disk); the encoders' loops over captions and their numpy -> torch copies run as in the official step."""

    def __init__(self, rows: dict[str, np.ndarray], ndims: int, vocab=None):
        self.rows, self.ndims, self.vocab = rows, ndims, vocab

    def encoding(self, caption: str) -> np.ndarray:
        return self.rows[caption]


def official_inputs(cfg, text: dict, video: dict, vid_feats: list[str]) -> tuple[list[str], dict, dict]:
    """The simulated batch as the official step takes it: caption strings (with featurizers that map each to its
    row), precomputed CLIP text features, video features under the official feature names."""
    captions = [f"simulated caption {i}" for i in range(len(text["gru_lengths"]))]
    dims = {f.name: f.dim for f in cfg.text}
    ids = {c: text["gru_ids"][i, : int(n)].numpy() for i, (c, n) in enumerate(zip(captions, text["gru_lengths"]))}
    # BowVec and W2Vec build float64 vectors; the batch's float32 values convert exactly
    bow = dict(zip(captions, text["bow"].double().numpy()))
    w2v = dict(zip(captions, text["w2v"].double().numpy()))
    featurizers = {
        "t2v_idx": _Rows(ids, dims["gru"], vocab=range(dims["gru"])),
        "t2v_bow": _Rows(bow, dims["bow"]),
        "t2v_w2v": _Rows(w2v, dims["w2v"]),
    }
    names = [f.name for f in cfg.video]
    if len(vid_feats) != len(names):
        sys.exit(f"official config laff {PAPER_PARM}: video features {vid_feats}, avs has {names}")
    vis = {official: video[name] for official, name in zip(vid_feats, names)}
    return captions, featurizers, vis


def build_official(official, cfg, text: dict, video: dict, device: torch.device):
    """The official LAFF model (config laff, the paper's parm string) at the sizes of ``cfg``, set up as the
    official trainer's prepare_config does, and the training batch the official collate_pair would produce."""
    config = official.laff.config()
    with contextlib.redirect_stdout(io.StringIO()):
        config.adjust_parm(PAPER_PARM)
    captions, featurizers, vis = official_inputs(cfg, text, video, list(config.vid_feats))
    for k, v in featurizers.items():
        setattr(config, k, v)
    config.vis_fc_layers = [{name: v.shape[1] for name, v in vis.items()}, config.vis_fc_layers[1]]
    config.txt_fc_layers = list(map(int, config.txt_fc_layers.split("-")))
    config.pooling = config.text_encoding["rnn_encoding"]["name"].split("_", 1)[1]
    # get_we: uniform(-1, 1) rows (word2vec vectors for known words; none here)
    gen = torch.Generator().manual_seed(0)
    config.we = torch.rand(featurizers["t2v_idx"].ndims, config.we_dim, generator=gen) * 2 - 1
    if (config.vis_fc_layers[1], config.multi_head_attention["heads"]) != (cfg.space_dim, cfg.heads):
        sys.exit(f"official config laff: {config.vis_fc_layers[1]} / {config.multi_head_attention['heads']} heads")
    benchmark = torch.backends.cudnn.benchmark
    with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # GradScaler() without CUDA, torch.cuda.amp deprecation
        model = official.model.get_model(config.model_name, device, config)
    torch.backends.cudnn.benchmark = benchmark
    caption_feats = {"caption": captions, "CLIP_encoding": text["clip"].to(device)}
    vis = {k: v.to(device) for k, v in vis.items()}
    return model.train(), caption_feats, vis


def bench_official(official, batch: int, steps: int) -> tuple[float, int]:
    """Captions/s of the official training step (W2VVPP.forward: forward, zero_grad, loss, backward,
    clip_grad_norm_, RMSprop step) on the batch of make_batch; also the number of parameters it trains."""
    torch.manual_seed(0)
    cfg = paper_config()
    text, video = make_batch(cfg, batch, torch.Generator().manual_seed(0))
    model, caption_feats, vis = build_official(official, cfg, text, video, torch.device("cpu"))

    def step():
        # a fresh collate_pair-style batch: the official VisMutiTransformNet writes into its vis_feats dict
        train_data = {
            "vis_feats": dict(vis),
            "captions": caption_feats,
            "captions_task2": None,
            "vis_frame_feat_dict": {},
            "vis_origin_frame_tuple": None,
        }
        model(train_data, 0)

    step()  # warm-up: allocations, optimizer state
    # after a step every parameter the official model trains holds a gradient; the others never get one
    trained = sum(p.numel() for p in model.parameters() if p.grad is not None)
    declared = sum(p.numel() for p in model.parameters() if p.requires_grad)
    label = f"cpu, official LAFF ({official.commit}): {trained} trained parameters ({declared} with requires_grad)"
    return timed(step, batch, steps, label), trained


def step_gflop(step) -> float:
    """GFLOP of one call of ``step`` spent in matrix products (forward and backward), as torch counts them."""
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        step()
    return counter.get_total_flops() / 1e9


def gemm_gflops() -> float:
    """This machine's float32 matrix-product rate on a large square product: the ceiling a step's products reach."""
    a, b = torch.randn(2048, 2048), torch.randn(2048, 2048)
    a @ b
    t0 = time.perf_counter()
    for _ in range(5):
        a @ b
    return 5 * 2 * 2048**3 / (time.perf_counter() - t0) / 1e9


def median(values: list[float]) -> float:
    return sorted(values)[len(values) // 2]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--threads", type=int, help="torch CPU threads (default: torch's choice)")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument(
        "--official", type=Path, metavar="PATH", help="a checkout of github.com/ruc-aimc-lab/LAFF to compare with"
    )
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    print(describe())
    print(f"torch {torch.__version__}, {torch.get_num_threads()} CPU threads; inputs SIMULATED (random)")
    print(f"float32 matrix products on this machine: {gemm_gflops():.0f} GFLOP/s (2048 x 2048 x 2048)")
    if args.official:
        official = import_official(args.official)
        print(f"official LAFF from {args.official} ({official.commit}), config laff {PAPER_PARM}")
        # alternated, medians of --repeats: both steps measured in the same run, on the same data
        runs: dict[str, list[float]] = {"official": [], "avs": []}
        trained = 0
        for _ in range(args.repeats):
            rate, trained = bench_official(official, args.batch_size, args.steps)
            runs["official"].append(rate)
            runs["avs"].append(bench("cpu", args.batch_size, args.steps))
        ours = count_parameters(TextVideoModel(paper_config()))
        same = "equal" if trained == ours else "DIFFERENT: the two steps do not train the same network"
        print(f"trained parameters: official LAFF {trained}, avs {ours} ({same})")
        base, fast = median(runs["official"]), median(runs["avs"])
        print(
            f"cpu medians: official LAFF {base:.1f} captions/s, avs {fast:.1f} captions/s: "
            f"avs/official = {fast / base:.2f}x (official {official.commit})"
        )
    else:
        # alternated, medians of --repeats: the two optimizers measured in the same run, on the same model and data
        runs = {name: [] for name in OPTIMIZERS}
        for _ in range(args.repeats):
            for name in OPTIMIZERS:
                runs[name].append(bench("cpu", args.batch_size, args.steps, name))
        base, ours = median(runs["torch RMSprop"]), median(runs["avs RMSprop (in place)"])
        print(f"cpu medians: torch RMSprop {base:.1f}, avs RMSprop {ours:.1f} captions/s: {ours / base:.2f}x")
    if torch.cuda.is_available():
        print(f"GPU: {torch.cuda.get_device_name(0)}")
        bench("cuda", args.batch_size, max(args.steps, 20))
    else:
        print("cuda: not available")


if __name__ == "__main__":
    main()
