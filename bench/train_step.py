"""Training throughput of the paper's LAFF (captions/s): forward, backward, grad-norm clip and RMSprop step.

Inputs are SIMULATED (random): video clip_ft 512, tf 768, x3d 2048, ircsn 2048; text gru ids (vocabulary
4096, 12-20 tokens), bow counts (vocabulary 3981), w2v 500, clip 512; H = 8, D = 4096 (49,256,464 trainable
parameters). Featurization and data loading are not timed. Runs on the CPU, and on CUDA when available.

    python bench/train_step.py [--batch-size 64] [--steps 5] [--threads N] [--repeats 3]

The step with torch's RMSprop and with avs's (the same arithmetic, in place) are measured alternately in one run.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
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


OPTIMIZERS = {"torch RMSprop": torch.optim.RMSprop, "avs RMSprop (in place)": RMSprop}


def bench(device: str, batch: int, steps: int, optimizer: str = "avs RMSprop (in place)") -> float:
    torch.manual_seed(0)
    cfg = load_config("laff").with_dims(text={"gru": 4096, "bow": 3981})
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
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    seconds = time.perf_counter() - t0
    print(
        f"{device}, {optimizer}: {count_parameters(model)} trainable parameters, batch {batch}, {steps} steps: "
        f"{seconds / steps:.3f} s/step, {batch * steps / seconds:.1f} captions/s",
        flush=True,
    )
    return batch * steps / seconds


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--threads", type=int, help="torch CPU threads (default: torch's choice)")
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    print(describe())
    print(f"torch {torch.__version__}, {torch.get_num_threads()} CPU threads; inputs SIMULATED (random)")
    # alternated, medians of --repeats: the two optimizers measured in the same run, on the same model and data
    runs = {name: [] for name in OPTIMIZERS}
    for _ in range(args.repeats):
        for name in OPTIMIZERS:
            runs[name].append(bench("cpu", args.batch_size, args.steps, name))
    med = {name: sorted(v)[len(v) // 2] for name, v in runs.items()}
    base, ours = med["torch RMSprop"], med["avs RMSprop (in place)"]
    print(f"cpu medians: torch RMSprop {base:.1f}, avs RMSprop {ours:.1f} captions/s: {ours / base:.2f}x")
    if torch.cuda.is_available():
        print(f"GPU: {torch.cuda.get_device_name(0)}")
        bench("cuda", args.batch_size, max(args.steps, 20))
    else:
        print("cuda: not available")


if __name__ == "__main__":
    main()
