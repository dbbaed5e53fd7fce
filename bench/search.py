"""Search and index-build speed at V3C1 scale, against floors measured in the same run.

Data is SIMULATED: random unit vectors (8 spaces x 512, float16), 1,082,657 shots by default (V3C1's count),
cached in bench/.cache/ (8.9 GB each; built once); --clustered draws rows and queries around 2,000 centres per
space instead (real features cluster, which is what lets the bfloat16 first pass rule rows out; random vectors
pack every score within a few hundredths, the worst case for it). Each measurement runs in a fresh process so
that its peak RSS is its own. The search runs with the float32 first pass and with the bfloat16 one, and both
rankings are compared with a float64 brute force (same shots in the same order, scores within 1e-12).

    python bench/search.py [--shots 1082657] [--topics 20] [--build-shots 100000] [--clustered] [--k 1000]
    python bench/search.py --ann [--ann-shots 200000] [--topics 20]

--ann compares, on one clustered SIMULATED index (rows and queries drawn around 2,000 centres per space, as real
features cluster; random vectors have no neighbours for an inverted file to find), in one run: exact search
(avs), FAISS IndexFlatIP (exact, float32 rows in memory) and avs's approximate search (FAISS IVF candidates
scored exactly) at several nprobe, with recall@1000 against the exact ranking.

Search floor = max(one plain sequential read of the index bytes, a bare float32 matrix product of the same
shape on data already in memory). Build floor = the bare matrix products of the model's video projections.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from _machine import describe  # noqa: E402

CACHE = Path(__file__).parent / ".cache"
SPACES, SPACE = 8, 512
DIM = SPACES * SPACE


def index_path(n: int, clustered: bool = False) -> Path:
    return CACHE / f"sim_index_{'clustered_' if clustered else ''}{n}.h5"


CENTRES = 2000


def _clustered(rng, rows: int, centres: np.ndarray, spread: float = 0.6) -> np.ndarray:
    # one centre a row for all its spaces: the spaces of a real model embed one shot's content, so they agree
    pick = np.repeat(rng.integers(0, len(centres), (rows, 1)), SPACES, axis=1)
    noise = rng.standard_normal((rows, SPACES, SPACE), dtype=np.float32) * (spread / np.sqrt(SPACE))
    x = centres[pick, np.arange(SPACES)] + noise  # noise of norm ~ spread around unit centres
    return x / np.linalg.norm(x, axis=2, keepdims=True)


def _centres() -> np.ndarray:
    c = np.random.default_rng(7).standard_normal((CENTRES, SPACES, SPACE), dtype=np.float32)
    return c / np.linalg.norm(c, axis=2, keepdims=True)


def build_sim_index(n: int, clustered: bool = False) -> Path:
    import h5py

    from avs.engine.index import FORMAT, FORMAT_VERSION

    path = index_path(n, clustered)
    if path.exists():
        return path
    centres = _centres() if clustered else None
    CACHE.mkdir(exist_ok=True)
    tmp = path.with_suffix(".part")
    rng = np.random.default_rng(0)
    t = time.perf_counter()
    with h5py.File(tmp, "w") as f:
        f.attrs.update(
            format=FORMAT,
            format_version=FORMAT_VERSION,
            spaces=SPACES,
            space_size=SPACE,
            space_weights=np.full(SPACES, 1 / SPACES),
            model_fingerprint="simulated",
            model_name="simulated",
            collection_fingerprint="simulated",
            collection_name="simulated V3C1-size",
            rows_done=n,
            complete=1,
        )
        f.create_dataset(
            "ids",
            data=np.array([f"shot{i // 150 + 1:05d}_{i % 150 + 1}" for i in range(n)], dtype=object),
            dtype=h5py.string_dtype(),
        )
        ds = f.create_dataset("embeddings", shape=(n, DIM), dtype=np.float16)
        for start in range(0, n, 32768):
            rows = min(32768, n - start)
            if clustered:
                block = _clustered(rng, rows, centres)
            else:
                block = rng.standard_normal((rows, SPACES, SPACE), dtype=np.float32)
                block /= np.linalg.norm(block, axis=2, keepdims=True)
            ds[start : start + len(block)] = block.reshape(len(block), DIM).astype(np.float16)
    tmp.rename(path)
    print(f"built simulated index {path.name} ({path.stat().st_size / 1e9:.1f} GB) in {time.perf_counter() - t:.0f} s")
    return path


def queries(q: int, clustered: bool = False) -> np.ndarray:
    rng = np.random.default_rng(1)
    if clustered:
        x = _clustered(rng, q, _centres())
    else:
        x = rng.standard_normal((q, SPACES, SPACE)).astype(np.float32)
        x /= np.linalg.norm(x, axis=2, keepdims=True)
    return (x / SPACES).reshape(q, DIM).astype(np.float32)  # what avs searches with


def peak_rss_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def reference(n: int, q: int, clustered: bool, k: int) -> dict:
    """Top k by float64 scores of every row (BLAS in float64, blocks of rows), ordered as avs orders."""
    from avs.engine.index import open_index
    from avs.engine.search import best_k

    idx = open_index(index_path(n, clustered))
    qs = queries(q, clustered).astype(np.float64)
    mm = idx.memmap()
    rows, scores = np.empty((q, 0), np.int64), np.empty((q, 0))
    for start in range(0, n, 32768):
        s = mm[start : start + 32768].astype(np.float64) @ qs.T
        r = np.broadcast_to(np.arange(start, start + len(s)), (q, len(s)))
        rows, scores = np.concatenate([rows, r], axis=1), np.concatenate([scores, s.T], axis=1)
        if rows.shape[1] > 4 * k:  # keep a safe margin of near-ties around the k-th
            top = np.argsort(-scores, axis=1, kind="stable")[:, : 2 * k]
            rows, scores = np.take_along_axis(rows, top, 1), np.take_along_axis(scores, top, 1)
    hits = [best_k([idx.ids[r] for r in rows[j]], scores[j], k) for j in range(q)]
    return {"shots": [h.shots for h in hits], "scores": [h.scores.tolist() for h in hits]}


def measure(what: str, n: int, q: int, build_shots: int, clustered: bool = False, k: int = 1000) -> dict:
    import torch

    if what.startswith("search"):
        from avs.engine.index import open_index
        from avs.engine.search import search

        idx = open_index(index_path(n, clustered))
        qs = queries(q, clustered)
        t = time.perf_counter()
        hits = search(idx, qs, k=k, first_pass=what.split("_")[1])
        secs = time.perf_counter() - t
        assert all(len(h.shots) == k for h in hits)
        return {
            "seconds": secs,
            "rss_gb": peak_rss_gb(),
            "shots": [h.shots for h in hits],
            "scores": [h.scores.tolist() for h in hits],
        }
    if what == "reference":
        return reference(n, q, clustered, k)
    if what == "read":
        from avs.engine.index import open_index

        mm = open_index(index_path(n, clustered)).memmap()
        buf = np.empty((32768, DIM), np.float16)
        t = time.perf_counter()
        for start in range(0, n, 32768):
            stop = min(start + 32768, n)
            buf[: stop - start] = mm[start:stop]
        return {"seconds": time.perf_counter() - t, "rss_gb": peak_rss_gb()}
    if what == "matmul":
        block = torch.randn(32768, DIM)
        qt = torch.from_numpy(queries(q)).T.contiguous()
        block @ qt  # warm-up
        t = time.perf_counter()
        done = 0
        while done < n:
            rows = min(32768, n - done)
            block[:rows] @ qt
            done += rows
        return {"seconds": time.perf_counter() - t, "rss_gb": peak_rss_gb()}
    if what in ("build", "build_floor", "build_setup"):
        return measure_build(what, build_shots)
    raise ValueError(what)


def measure_build(what: str, n: int) -> dict:
    """Index build on a simulated store with the paper's four video features vs. the bare projections."""
    import shutil

    import torch

    from avs.engine.index import build_index
    from avs.formats.store import write_store
    from avs.models import TextVideoModel, load_config, save_model

    cfg = load_config("laff").with_dims(text={"bow": 1000, "gru": 1000})
    dims = {f.name: f.dim for f in cfg.video}
    rng = np.random.default_rng(2)
    store, model, out = CACHE / f"sim_store_{n}.h5", CACHE / "sim_laff_model", CACHE / f"sim_index_build_{n}.h5"
    if what == "build_setup":  # its own process, so that the build's peak RSS is the build's alone
        if not store.exists():
            ids = [f"shot{i // 150 + 1:05d}_{i % 150 + 1}" for i in range(n)]
            write_store(
                store, ids, {k: rng.standard_normal((n, d), dtype=np.float32) for k, d in dims.items()}, dtype="float16"
            )
        if not model.exists():
            save_model(TextVideoModel(cfg).eval(), model)
        return {"seconds": 0.0, "rss_gb": peak_rss_gb()}
    if what == "build_floor":
        blocks = {k: torch.from_numpy(rng.standard_normal((2048, d), dtype=np.float32)) for k, d in dims.items()}
        weights = {k: torch.randn(d, DIM) for k, d in dims.items() if k != "clip_ft"}
        t = time.perf_counter()
        with torch.no_grad():
            for _ in range(0, n, 2048):
                for k, w in weights.items():
                    blocks[k] @ w
        return {"seconds": time.perf_counter() - t, "rss_gb": peak_rss_gb()}
    t = time.perf_counter()
    build_index(model, store, out, progress=False, force=True)
    secs = time.perf_counter() - t
    out.unlink()
    shutil.rmtree(model)
    store.unlink()
    return {"seconds": secs, "rss_gb": peak_rss_gb()}


def compare_ann(n: int, q: int) -> None:
    """Exact search, FAISS IndexFlatIP and avs's approximate search on one clustered index, in one process, one
    query at a time (the interactive case ANN is for)."""
    import faiss

    from avs.engine.ann import AnnIndex, build_ann
    from avs.engine.index import open_index
    from avs.engine.search import search
    from avs.engine.shards import merge_hits

    path = build_sim_index(n, clustered=True)
    idx, qs = open_index(path), queries(q, clustered=True)
    print(f"ANN: {q} topics x {n:,} shots (SIMULATED clustered index, 8x512 float16), top 1000, one query at a time")
    search(idx, qs[:1], k=1000)  # warm the page cache

    def timed(fn):
        t = time.perf_counter()
        out = [fn(j) for j in range(q)]
        return out, (time.perf_counter() - t) / q

    exact, t_exact = timed(lambda j: search(idx, qs[j : j + 1], k=1000)[0].shots)

    def recall(found, depth: int = 1000) -> float:
        return float(np.mean([len(set(exact[j][:depth]) & set(found[j][:depth])) / depth for j in range(q)]))

    def row(name, found, secs):
        return name, secs, recall(found, 100), recall(found)

    rows = [row("avs exact search", exact, t_exact)]
    flat = faiss.IndexFlatIP(DIM)
    for start in range(0, n, 32768):
        flat.add(np.ascontiguousarray(idx.embeddings[start : start + 32768], dtype=np.float32))
    found, secs = timed(lambda j: [idx.ids[r] for r in flat.search(qs[j : j + 1], 1000)[1][0]])
    rows.append(row("FAISS IndexFlatIP (float32 in RAM)", found, secs))
    flat.reset()  # its float32 copy of the rows is freed before the next measurements
    t = time.perf_counter()
    build_ann(path, force=True)
    print(f"  approximate index: built in {time.perf_counter() - t:.1f} s (IVF{int(np.sqrt(n))},SQfp16)")
    for nprobe in (4, 16, 64, 256):
        ann = AnnIndex(idx, nprobe)
        found, secs = timed(lambda j, ann=ann: merge_hits(ann.search(qs[j : j + 1], 1000, 4000), 1000).shots)
        rows.append(row(f"avs --ann (nprobe {nprobe}, 4000 cand.)", found, secs))
    print(f"  {'':<36} {'ms/query':>9} {'speed-up':>9} {'recall@100':>11} {'recall@1000':>12}")
    for name, secs, r100, r1000 in rows:
        print(f"  {name:<36} {secs * 1000:9.1f} {t_exact / secs:8.2f}x {r100:11.4f} {r1000:12.4f}")


def child(what: str, args) -> dict:
    out = subprocess.run(
        [
            sys.executable,
            __file__,
            "--measure",
            what,
            "--shots",
            str(args.shots),
            "--topics",
            str(args.topics),
            "--build-shots",
            str(args.build_shots),
            *(["--clustered"] if args.clustered else []),
            "--k",
            str(args.k),
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--shots", type=int, default=1_082_657)
    ap.add_argument("--topics", type=int, default=20)
    ap.add_argument("--build-shots", type=int, default=100_000)
    ap.add_argument("--clustered", action="store_true", help="Clustered simulated rows and queries.")
    ap.add_argument("--k", type=int, default=1000, help="Shots kept per topic (default 1000, a submission's depth).")
    ap.add_argument("--measure", help=argparse.SUPPRESS)
    ap.add_argument("--ann", action="store_true", help="Compare exact, FAISS IndexFlatIP and approximate search.")
    ap.add_argument("--ann-shots", type=int, default=200_000)
    args = ap.parse_args()
    if args.measure:
        print(json.dumps(measure(args.measure, args.shots, args.topics, args.build_shots, args.clustered, args.k)))
        return
    print(describe())
    if args.ann:
        compare_ann(args.ann_shots, args.topics)
        return
    build_sim_index(args.shots, args.clustered)
    child("read", args)  # warm the page cache, so that the read floor and the search both find the file there
    read, mm = child("read", args), child("matmul", args)
    s32, sb = child("search_float32", args), child("search_bfloat16", args)
    ref = child("reference", args)
    kind = "clustered" if args.clustered else "random"
    print(
        f"search: {args.topics} topics x {args.shots:,} shots (SIMULATED {kind} index, 8x512 float16), "
        f"top {args.k} exact"
    )
    for name, s in (("float32 first pass", s32), ("bfloat16 first pass", sb)):
        same = s["shots"] == ref["shots"]
        diff = max(max(abs(a - b) for a, b in zip(x, y)) for x, y in zip(s["scores"], ref["scores"])) if same else None
        print(
            f"  search, {name:<20} {s['seconds']:7.2f} s   peak RSS {s['rss_gb']:.2f} GB   "
            f"{s['seconds'] / read['seconds']:.2f}x read   ranking == float64 brute force: {same}"
            + (f" (scores within {diff:.1e})" if same else "")
        )
    print(f"  floor: read    {read['seconds']:7.2f} s   (one sequential pass over the index bytes, warm page cache)")
    print(f"  floor: matmul  {mm['seconds']:7.2f} s   (bare float32 product of the same shape, in memory)")
    print(f"  bfloat16 / float32 first pass = {sb['seconds'] / s32['seconds']:.2f}")
    child("build_setup", args)
    b, bf = child("build", args), child("build_floor", args)
    print(f"index build: {args.build_shots:,} shots (SIMULATED store, paper LAFF video side, float16 store)")
    print(
        f"  build          {b['seconds']:7.2f} s   {args.build_shots / b['seconds']:,.0f} shots/s   "
        f"peak RSS {b['rss_gb']:.2f} GB"
    )
    print(f"  floor: matmul  {bf['seconds']:7.2f} s   (bare projections 768/2048/2048 -> 4096)")
    print(f"  ratio build / floor = {b['seconds'] / bf['seconds']:.2f}")


if __name__ == "__main__":
    main()
