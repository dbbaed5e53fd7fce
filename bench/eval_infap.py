"""Time to evaluate 100 runs (20 topics x 1000 shots) against the real tv21 qrels in one process.

Runs are SIMULATED: per topic, 1000 shots drawn from the topic's pooled shots and from unpooled shot ids,
in random order. Where ``perl`` and a local sample_eval.pl are given (``--perl-script PATH``; the script is
not part of avs), the same 100 evaluations are timed with it too and the ratio is printed.

    python bench/eval_infap.py [--runs 100] [--perl-script /path/to/sample_eval.pl]
"""

from __future__ import annotations

import argparse
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _machine import describe  # noqa: E402

from trec_eval_compat.evaluate import Qrels, evaluate, format_sample_eval  # noqa: E402

QRELS = Path(__file__).parent.parent / "tests" / "data" / "sample_eval" / "avs.qrels.main.tv21.gz"


def make_runs(qrels: Qrels, n_runs: int, folder: Path) -> list[Path]:
    rnd = random.Random(0)
    paths = []
    for i in range(n_runs):
        lines = []
        for topic, q in sorted(qrels.topics.items()):
            pooled = rnd.sample(sorted(q.shots), 500)
            other = [f"shot{rnd.randint(1, 7475):05d}_{rnd.randint(1, 400)}" for _ in range(500)]
            shots = pooled + other
            rnd.shuffle(shots)
            lines += [f"{topic} Q0 {s} {k + 1} {10000 - k} sim{i}\n" for k, s in enumerate(shots)]
        p = folder / f"run{i:03d}.txt"
        p.write_text("".join(lines))
        paths.append(p)
    return paths


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=100)
    ap.add_argument("--perl-script", help="path to NIST's sample_eval.pl, to time it on the same runs")
    args = ap.parse_args()
    print(describe())
    with tempfile.TemporaryDirectory() as tmp:
        qrels = Qrels.read(QRELS)
        runs = make_runs(qrels, args.runs, Path(tmp))
        t0 = time.perf_counter()
        qrels = Qrels.read(QRELS)
        t_qrels = time.perf_counter() - t0
        outputs = [format_sample_eval(evaluate(qrels, r), per_query=True) for r in runs]
        t_total = time.perf_counter() - t0
        print(f"trec_eval_compat: {args.runs} runs x 20 topics x 1000 shots (simulated) against tv21: "
              f"{t_total:.2f} s total ({t_qrels:.2f} s reading qrels once, "
              f"{(t_total - t_qrels) / args.runs * 1000:.1f} ms per run)")
        if args.perl_script and shutil.which("perl"):
            t0 = time.perf_counter()
            plain = _plain_qrels(tmp)
            perl_out = [subprocess.run(["perl", args.perl_script, "-q", plain, str(r)], capture_output=True,
                                       text=True, check=True).stdout for r in runs]
            t_perl = time.perf_counter() - t0
            same = sum(a == b for a, b in zip(outputs, perl_out))
            print(f"sample_eval.pl: {t_perl:.2f} s for the same {args.runs} runs (one process per run); "
                  f"ratio perl/python = {t_perl / t_total:.1f}x; identical outputs: {same}/{args.runs}")


def _plain_qrels(tmp: str) -> str:
    # sample_eval.pl does not read gzip
    import gzip

    p = Path(tmp) / "avs.qrels.main.tv21"
    if not p.exists():
        p.write_bytes(gzip.decompress(QRELS.read_bytes()))
    return str(p)


if __name__ == "__main__":
    main()
