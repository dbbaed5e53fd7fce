"""Time to evaluate 100 runs (20 topics x 1000 shots) against the real tv21 qrels in one process.

Runs are SIMULATED: per topic, 1000 shots drawn from the topic's pooled shots and from unpooled shot ids,
in random order. Where ``perl`` and a local sample_eval.pl are given (``--perl-script PATH``; the script is
not part of avs), the same 100 evaluations are timed with it too and the ratio is printed.

    python bench/eval_infap.py [--runs 100] [--perl-script /path/to/sample_eval.pl]

``--scale LINES`` measures instead two large SIMULATED runs of LINES lines each, the shapes of the issue that asks
for them: few topics with very long lists (the 20 tv21 topics), and 500 topics of LINES/500 lines (judged with
every 10th row of the tv21 judgments repeated under 500 topic ids). Each evaluator runs in its own process (``python -m
trec_eval_compat -q`` and, given ``--perl-script``, ``perl sample_eval.pl -q``); wall time, peak RSS and whether
the outputs are the same bytes are printed side by side, then ``avs run validate`` on each run (time, peak RSS).
Files are cached in ``bench/.cache/eval_scale``.

    python bench/eval_infap.py --scale 10000000 --perl-script /path/to/sample_eval.pl

``--single TIMES`` evaluates one real-sized run as a user does, each evaluator started afresh every time
(interpreter start-up and imports included), alternating them; medians.

    python bench/eval_infap.py --single 7 --perl-script /path/to/sample_eval.pl
"""

from __future__ import annotations

import argparse
import gzip
import os
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
    ap.add_argument("--scale", type=int, metavar="LINES", help="measure two runs of LINES lines instead")
    ap.add_argument(
        "--single",
        type=int,
        metavar="TIMES",
        help="time one real-sized run (tv21's run1_mixed, 20,000 lines) TIMES times, each evaluator started afresh",
    )
    args = ap.parse_args()
    print(describe())
    if args.scale:
        return scale(args.scale, args.perl_script)
    if args.single:
        return single(args.single, args.perl_script)
    with tempfile.TemporaryDirectory() as tmp:
        qrels = Qrels.read(QRELS)
        runs = make_runs(qrels, args.runs, Path(tmp))
        t0 = time.perf_counter()
        qrels = Qrels.read(QRELS)
        t_qrels = time.perf_counter() - t0
        outputs = [format_sample_eval(evaluate(qrels, r), per_query=True) for r in runs]
        t_total = time.perf_counter() - t0
        print(
            f"trec_eval_compat: {args.runs} runs x 20 topics x 1000 shots (simulated) against tv21: "
            f"{t_total:.2f} s total ({t_qrels:.2f} s reading qrels once, "
            f"{(t_total - t_qrels) / args.runs * 1000:.1f} ms per run)"
        )
        if args.perl_script and shutil.which("perl"):
            t0 = time.perf_counter()
            plain = _plain_qrels(tmp)
            perl_out = [
                subprocess.run(
                    ["perl", args.perl_script, "-q", plain, str(r)], capture_output=True, text=True, check=True
                ).stdout
                for r in runs
            ]
            t_perl = time.perf_counter() - t0
            same = sum(a == b for a, b in zip(outputs, perl_out))
            print(
                f"sample_eval.pl: {t_perl:.2f} s for the same {args.runs} runs (one process per run); "
                f"ratio perl/python = {t_perl / t_total:.1f}x; identical outputs: {same}/{args.runs}"
            )


def single(times: int, perl_script: str | None) -> None:
    """One run evaluated as a user does, a fresh process each time (start-up included), alternating the two
    evaluators; medians."""
    run = Path(__file__).parent.parent / "tests" / "data" / "sample_eval" / "run1_mixed.txt.gz"
    with tempfile.TemporaryDirectory() as tmp:
        plain_run = Path(tmp) / "run"
        plain_run.write_bytes(gzip.decompress(run.read_bytes()))
        plain = _plain_qrels(tmp)
        cmds = {"python -m trec_eval_compat": [sys.executable, "-m", "trec_eval_compat", "-q", plain, str(plain_run)]}
        if perl_script and shutil.which("perl"):
            cmds["perl sample_eval.pl"] = ["perl", perl_script, "-q", plain, str(plain_run)]
        results: dict[str, list] = {name: [] for name in cmds}
        for _ in range(times):
            for name, cmd in cmds.items():
                results[name].append(measure(cmd))
    print(f"one run of 20,000 lines against tv21 (124,431 judgments), {times} times each, fresh processes:")
    medians = {}
    for name, rs in results.items():
        secs = sorted(r[0] for r in rs)[len(rs) // 2]
        medians[name] = secs
        print(f"  {name:<28} median {secs:.3f} s   peak RSS {max(r[1] for r in rs):.3f} GB")
    outs = {name: rs[0][2] for name, rs in results.items()}
    if len(outs) == 2:
        a, b = medians.values()
        print(f"  ratio python/perl = {a / b:.2f}; same bytes: {len(set(outs.values())) == 1}")


def measure(cmd: list[str], ok: tuple[int, ...] = (0,)) -> tuple[float, float, bytes]:
    """Wall seconds, peak RSS in GB and stdout of one process (exit status in ``ok``)."""
    with tempfile.TemporaryFile() as out:
        t0 = time.perf_counter()
        p = subprocess.Popen(cmd, stdout=out, stderr=subprocess.DEVNULL)
        _, status, usage = os.wait4(p.pid, 0)
        seconds = time.perf_counter() - t0
        p.returncode = os.waitstatus_to_exitcode(status)
        if p.returncode not in ok:
            raise SystemExit(f"{' '.join(cmd)} exited with {p.returncode}")
        out.seek(0)
        return seconds, usage.ru_maxrss / 2**20, out.read()


def scale_files(lines: int, folder: Path) -> list[tuple[str, Path, Path]]:
    """(shape, qrels, run) for the two shapes, written once."""
    folder.mkdir(parents=True, exist_ok=True)
    tv21 = gzip.decompress(QRELS.read_bytes()).decode().splitlines()
    shapes = []
    for name, n_topics in (("20 topics", 20), ("500 topics", 500)):
        qrels, run = folder / f"qrels.{n_topics}", folder / f"run.{n_topics}.{lines}"
        by_topic: dict[str, list[str]] = {}
        for ln in tv21:
            by_topic.setdefault(ln.split()[0], []).append(ln)
        base = sorted(by_topic)
        if not qrels.exists():
            with open(qrels, "w") as f:
                for i in range(n_topics):
                    topic = base[i] if n_topics == 20 else str(10000 + i)
                    # 500 topics judged as deeply as tv21's 20 would be 5 M qrels lines: every 10th row is kept
                    for ln in by_topic[base[i % 20]][:: 1 if n_topics == 20 else 10]:
                        f.write(f"{topic} {ln.split(None, 1)[1]}\n")
        if not run.exists():
            rnd = random.Random(lines + n_topics)
            per = lines // n_topics
            with open(run, "w") as f:
                for i in range(n_topics):
                    topic = base[i] if n_topics == 20 else str(10000 + i)
                    pooled = [ln.split()[2] for ln in by_topic[base[i % 20]]]
                    chunk = []
                    for k in range(per):
                        shot = (
                            rnd.choice(pooled)
                            if rnd.random() < 0.3
                            else f"shot{rnd.randint(1, 17235):05d}_{rnd.randint(1, 400)}"
                        )
                        chunk.append(f"{topic} Q0 {shot} {k + 1} {rnd.random() * 100:.4f} sim\n")
                        if len(chunk) == 100_000:
                            f.write("".join(chunk))
                            chunk = []
                    f.write("".join(chunk))
        shapes.append((name, qrels, run))
    return shapes


def scale(lines: int, perl_script: str | None) -> None:
    folder = Path(__file__).parent / ".cache" / "eval_scale"
    for name, qrels, run in scale_files(lines, folder):
        print(f"{name}, {lines:,} lines ({run.stat().st_size / 1e9:.2f} GB):")
        t_py, rss_py, out_py = measure([sys.executable, "-m", "trec_eval_compat", "-q", str(qrels), str(run)])
        print(f"  trec_eval_compat  {t_py:7.1f} s  {rss_py:5.2f} GB peak RSS")
        if perl_script and shutil.which("perl"):
            t_pl, rss_pl, out_pl = measure(["perl", perl_script, "-q", str(qrels), str(run)])
            print(f"  sample_eval.pl    {t_pl:7.1f} s  {rss_pl:5.2f} GB peak RSS")
            print(
                f"  ratio avs/perl: time {t_py / t_pl:.2f}x, memory {rss_py / rss_pl:.2f}x; "
                f"same bytes: {out_py == out_pl}"
            )
        # a simulated 10 M-line run breaks NIST's rules on purpose (500,000 or 20,000 items a topic, duplicates)
        t_v, rss_v, out_v = measure([sys.executable, "-m", "avs", "run", "validate", str(run)], ok=(1,))
        problems = out_v.count(b"\n")
        print(f"  avs run validate  {t_v:7.1f} s  {rss_v:5.2f} GB peak RSS  ({problems:,} problems printed)")


def _plain_qrels(tmp: str) -> str:
    # sample_eval.pl does not read gzip
    p = Path(tmp) / "avs.qrels.main.tv21"
    if not p.exists():
        p.write_bytes(gzip.decompress(QRELS.read_bytes()))
    return str(p)


if __name__ == "__main__":
    main()
