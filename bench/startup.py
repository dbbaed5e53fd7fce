"""Start-up of ``avs search`` on a 100,000-shot index: where the seconds of one command go.

The index is the built-in demo's (SIMULATED) rows tiled to --shots rows under new shot ids, so the demo's model
searches it; cached in bench/.cache/. Each command runs in a fresh process, warm page cache, medians of --repeats:

- ``avs search`` end to end (CLI: imports, model, index, topics, search, the XML run written);
- the same phases timed inside one process through the library (torch import, other imports, model + index
  load, topics read, query encoding + scan, the run written).

The package is byte-compiled first, as pip compiles what it installs.

Start-up beyond model + index load = the command's wall time − (torch import + model + index load) − encoding +
scan. The torch import counts as model load: no model loads without it.

    python bench/startup.py [--shots 100000] [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _machine import describe  # noqa: E402

CACHE = Path(__file__).parent / ".cache"
TOPICS = Path(__file__).parents[1] / "topics" / "tv20.xml"

PHASES = r"""
import json, sys, time
t0 = time.perf_counter()
import torch
tt = time.perf_counter()
from avs.engine.searcher import Searcher
from avs.formats.runs import write_run
from avs.formats.topics import read_topics
t1 = time.perf_counter()
searcher = Searcher(sys.argv[1], sys.argv[2])
t2 = time.perf_counter()
topics = read_topics(sys.argv[3])
t3 = time.perf_counter()
result = searcher.run(topics)
t4 = time.perf_counter()
write_run(result.run, sys.argv[4], force=True)
t5 = time.perf_counter()
print(json.dumps({"torch import": tt - t0, "other imports": t1 - tt, "model + index load": t2 - t1,
                  "topics read": t3 - t2, "encode + scan": t4 - t3, "run written": t5 - t4}))
"""


def tiled_index(shots: int) -> tuple[Path, Path]:
    import h5py
    import numpy as np

    from avs.demo.builtin import demo_paths

    model, demo_index = demo_paths()
    out = CACHE / f"startup_index_{shots}.h5"
    if out.exists():
        return model, out
    CACHE.mkdir(exist_ok=True)
    with h5py.File(demo_index, "r") as src:
        rows = src["embeddings"][()]
        attrs = dict(src.attrs)
    tmp = out.with_suffix(".part")
    with h5py.File(tmp, "w") as f:
        f.attrs.update(attrs)
        f.attrs.update(rows_done=shots, complete=1, collection_name="SIMULATED demo rows tiled")
        ids = np.array([f"shot{i // 100 + 1:05d}_{i % 100 + 1}" for i in range(shots)], dtype=object)
        f.create_dataset("ids", data=ids, dtype=h5py.string_dtype())
        f.create_dataset("embeddings", data=np.resize(rows, (shots, rows.shape[1])))
    tmp.rename(out)
    return model, out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--shots", type=int, default=100_000)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    print(describe())
    model, index = tiled_index(args.shots)
    # byte-compiled first, as pip compiles an installed package (an editable one compiles on first use,
    # unless PYTHONDONTWRITEBYTECODE is set, as on some CI machines)
    root = Path(__file__).parents[1]
    packages = [str(root / "avs"), str(root / "trec_eval_compat")]
    subprocess.run([sys.executable, "-m", "compileall", "-q", *packages], check=True)
    avs = Path(sys.executable).with_name("avs")
    walls, phases = [], []
    with tempfile.TemporaryDirectory() as tmp:
        cli = [str(avs), "search", "--model", str(model), "--index", str(index), "--topics", str(TOPICS)]
        cli += ["--out", f"{tmp}/cli.xml", "--force"]
        subprocess.run(cli, check=True, capture_output=True)  # warm the page cache
        for _ in range(args.repeats):
            t = time.perf_counter()
            subprocess.run(cli, check=True, capture_output=True)
            walls.append(time.perf_counter() - t)
            out = subprocess.run(
                [sys.executable, "-c", PHASES, str(model), str(index), str(TOPICS), f"{tmp}/lib.xml"],
                check=True,
                capture_output=True,
                text=True,
            )
            phases.append(json.loads(out.stdout.strip().splitlines()[-1]))
    wall = sorted(walls)[len(walls) // 2]
    med = {k: sorted(p[k] for p in phases)[len(phases) // 2] for k in phases[0]}
    print(f"avs search: 20 topics (tv20) x {args.shots:,} shots (SIMULATED demo rows tiled), fresh processes, medians")
    print(f"  command wall time   {wall:6.2f} s")
    for k, v in med.items():
        print(f"  {k:<18}  {v:6.2f} s")
    load = med["torch import"] + med["model + index load"]
    beyond = wall - load - med["encode + scan"]
    print(f"  start-up beyond model + index load (torch import counted in the load) and the search: {beyond:.2f} s")


if __name__ == "__main__":
    main()
