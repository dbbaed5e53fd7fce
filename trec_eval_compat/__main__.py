"""``python -m trec_eval_compat [-q] QRELS RUN``: a drop-in for ``perl sample_eval.pl [-q] QRELS RUN``.

The default is the sample_eval.pl NIST distributes with AVS judgments (TV16 on: iP at 5, 10, 15, 20, 30, 100,
200, 500, 1000); ``--cutoffs 2012`` gives the generic script of 5 Sep 2012 (iP10, iP100, iP1000 twice).

Same stdout bytes on every well-formed input; a one-line error (exit 2) where the Perl script would die
with "Illegal division by zero" or silently shift columns; Ctrl-C exits 130 with one line, as a shell's
commands do.
"""

from __future__ import annotations

import argparse
import sys

from .errors import InputError
from .evaluate import evaluate, format_sample_eval, load_run, parse_cutoffs
from .ids import DEFAULT_PREFIX


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m trec_eval_compat", description=__doc__.split("\n\n")[0])
    ap.add_argument("-q", action="store_true", help="print the per-topic lines too")
    ap.add_argument(
        "--strict",
        action="store_true",
        help="refuse duplicates, >1000 results and unknown topics; average over all qrels topics",
    )
    ap.add_argument(
        "--topic-prefix",
        default=DEFAULT_PREFIX,
        help="prefix turning an XML run's tNum into the qrels topic id (default: %(default)s)",
    )
    ap.add_argument(
        "--cutoffs",
        default="avs",
        help="iP ranks: avs (default; NIST's AVS script), 2012 (the generic script) or a list 5,10,100",
    )
    ap.add_argument("qrels")
    ap.add_argument("run", help="TREC 6-column run or NIST run XML (.gz accepted)")
    args = ap.parse_args(argv)
    try:
        cutoffs = parse_cutoffs(args.cutoffs)
        ev = evaluate(
            args.qrels, load_run(args.run, args.topic_prefix), strict=args.strict, run_path=args.run, cutoffs=cutoffs
        )
        sys.stdout.write(format_sample_eval(ev, per_query=args.q))
    except InputError as e:
        print(f"trec_eval_compat: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("trec_eval_compat: interrupted", file=sys.stderr)
        return 130
    if ev.mode == "strict" and ev.missing_topics:
        print(
            f"trec_eval_compat: strict: {len(ev.missing_topics)} qrels topic(s) missing from the run scored 0",
            file=sys.stderr,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
