"""Import and sequential-read throughput of the collection store (avs.formats.store), on simulated features.

    python bench/collection_io.py [--rows 200000] [--dims 512,768,2048,2048] [--dtype float32]

Writes simulated BigFile folders (uniform random float32; the default widths are LAFF's four video
features, 5,376 dims together), imports them with ``avs.features.importers.import_bigfile`` and reads the store back
in row blocks with ``FeatureStore.iter_blocks``. For comparison it reads the same bytes (the BigFile
``feature.bin`` files) with plain ``readinto`` in blocks of the same size, in the same run. Files are
freshly written, so every read is served from the page cache when RAM allows (this machine's RAM is
printed): the figures compare software overhead, not disk speed. Data lives under ``bench/.cache/``
(git-ignored) and is deleted at the end unless ``--keep``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path

import h5py
import numpy as np

from avs.features.importers import import_bigfile
from avs.formats.store import block_rows_for, open_store


def machine() -> dict:
    cpu = (
        next(
            (
                line.split(":", 1)[1].strip()
                for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")
            ),
            platform.processor(),
        )
        if Path("/proc/cpuinfo").exists()
        else platform.processor()
    )
    mem = (
        next(
            (
                int(line.split()[1]) * 1024
                for line in Path("/proc/meminfo").read_text().splitlines()
                if line.startswith("MemTotal")
            ),
            0,
        )
        if Path("/proc/meminfo").exists()
        else 0
    )
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "ram_gb": round(mem / 1e9, 1),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "h5py": h5py.__version__,
        "hdf5": h5py.version.hdf5_version,
    }


def simulate(folder: Path, rows: int, dims: list[int], seed: int) -> list[Path]:
    rng = np.random.default_rng(seed)
    dirs = []
    for k, dim in enumerate(dims):
        d = folder / f"feat{k}_{dim}d"
        d.mkdir(parents=True)
        ids = [f"shot{1 + r // 200:05d}_{1 + r % 200}" for r in range(rows)]
        (d / "shape.txt").write_text(f"{rows} {dim}\n")
        (d / "id.txt").write_text(" ".join(ids))
        step = block_rows_for([dim])
        with open(d / "feature.bin", "wb") as fh:
            for start in range(0, rows, step):
                rng.random((min(step, rows - start), dim), dtype=np.float32).tofile(fh)
        dirs.append(d)
    return dirs


def plain_read(dirs: list[Path], block_bytes: list[int]) -> float:
    """Seconds to read every feature.bin start to end with readinto, block by block."""
    t = time.perf_counter()
    for d, nbytes in zip(dirs, block_bytes):
        buf = np.empty(nbytes, dtype=np.uint8)
        with open(d / "feature.bin", "rb", buffering=0) as fh:
            while fh.readinto(memoryview(buf)):
                pass
    return time.perf_counter() - t


def store_read(path: Path, block_rows: int, reuse: bool) -> float:
    t = time.perf_counter()
    with open_store(path) as s:
        for _ in s.iter_blocks(list(s.features), block_rows=block_rows, reuse=reuse):
            pass
    return time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rows", type=int, default=200_000)
    ap.add_argument("--dims", default="512,768,2048,2048")
    ap.add_argument("--dtype", choices=["float32", "float16"], default="float32")
    ap.add_argument("--workdir", type=Path, default=Path(__file__).parent / ".cache")
    ap.add_argument("--keep", action="store_true", help="Keep the simulated data and the store.")
    args = ap.parse_args()
    dims = [int(x) for x in args.dims.split(",")]
    args.workdir.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="collection_io.", dir=args.workdir))
    m = machine()
    print(
        f"machine: {m['cpu']}, {m['cores']} cores, {m['ram_gb']} GB RAM; python {m['python']}, numpy {m['numpy']}, "
        f"h5py {m['h5py']} (HDF5 {m['hdf5']})"
    )
    print(
        f"data: SIMULATED uniform float32, {args.rows} rows x {sum(dims)} dims ({'+'.join(map(str, dims))}), "
        f"store dtype {args.dtype}; files in {work} (page cache warm: figures are not disk speed)"
    )
    try:
        dirs = simulate(work / "bigfile", args.rows, dims, seed=0)
        os.sync()
        in_bytes = args.rows * sum(dims) * 4
        store = work / "store.h5"

        t = time.perf_counter()
        import_bigfile(dirs, store, dtype=args.dtype, progress=False)
        t_import = time.perf_counter() - t

        os.sync()  # so write-back of the import does not run during the reads
        block = block_rows_for(dims)
        plain1 = plain_read(dirs, [block * d * 4 for d in dims])
        store1 = store_read(store, block, reuse=True)
        fresh1 = store_read(store, block, reuse=False)
        plain2 = plain_read(dirs, [block * d * 4 for d in dims])
        store2 = store_read(store, block, reuse=True)
        fresh2 = store_read(store, block, reuse=False)
        plain, t_store, t_fresh = min(plain1, plain2), min(store1, store2), min(fresh1, fresh2)
        store_bytes = args.rows * sum(dims) * np.dtype(args.dtype).itemsize

        with open_store(store) as s:  # spot check: what went in comes out
            r = np.arange(0, args.rows, max(1, args.rows // 97))
            for d, name in zip(dirs, s.features):
                src = np.memmap(d / "feature.bin", dtype="<f4", mode="r", shape=(args.rows, s.dims[name]))
                assert np.array_equal(s.get(name, r), src[r].astype(args.dtype)), name

        res = {
            "machine": m,
            "rows": args.rows,
            "dims": dims,
            "dtype": args.dtype,
            "block_rows": block,
            "import_s": t_import,
            "import_rows_per_s": args.rows / t_import,
            "import_in_GB_per_s": in_bytes / t_import / 1e9,
            "store_read_s": [store1, store2],
            "store_read_rows_per_s": args.rows / t_store,
            "store_read_GB_per_s": store_bytes / t_store / 1e9,
            "store_read_fresh_arrays_s": [fresh1, fresh2],
            "store_read_fresh_GB_per_s": store_bytes / t_fresh / 1e9,
            "plain_read_s": [plain1, plain2],
            "plain_read_GB_per_s": in_bytes / plain / 1e9,
            "store_file_bytes": store.stat().st_size,
        }
        print(
            f"import (BigFile -> store):   {t_import:7.2f} s  {res['import_rows_per_s']:10,.0f} rows/s  "
            f"{res['import_in_GB_per_s']:6.2f} GB/s of float32 input"
        )
        print(
            f"store sequential read:       {t_store:7.2f} s  {res['store_read_rows_per_s']:10,.0f} rows/s  "
            f"{res['store_read_GB_per_s']:6.2f} GB/s  (reused buffers; best of {store1:.2f} s, {store2:.2f} s; "
            f"{block} rows per block)"
        )
        print(
            f"  same, fresh arrays:         {t_fresh:7.2f} s  {args.rows / t_fresh:10,.0f} rows/s  "
            f"{res['store_read_fresh_GB_per_s']:6.2f} GB/s  "
            f"(iter_blocks default; best of {fresh1:.2f} s, {fresh2:.2f} s)"
        )
        print(
            f"plain read of the BigFiles:  {plain:7.2f} s  {args.rows / plain:10,.0f} rows/s  "
            f"{res['plain_read_GB_per_s']:6.2f} GB/s  (best of {plain1:.2f} s, {plain2:.2f} s)"
        )
        plain_gbs = res["plain_read_GB_per_s"]
        print(
            f"store read / plain read:     {res['store_read_GB_per_s'] / plain_gbs:.2f} (reused), "
            f"{res['store_read_fresh_GB_per_s'] / plain_gbs:.2f} (fresh); "
            f"store file {res['store_file_bytes'] / 1e9:.2f} GB"
        )
        print(json.dumps(res))
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
