"""The ``avs`` command group itself: one-line errors instead of tracebacks, ``--version``, ``-v``. The command
modules register their commands on :data:`cli`; ``avs.cli`` imports them all."""

from __future__ import annotations

import logging
import os
import sys

import click

from avs import __version__
from avs.errors import InputError


def _fail(message: str, code: int = 2) -> None:
    click.echo(f"avs: error: {message}", err=True)
    sys.exit(code)


class AvsGroup(click.Group):
    """A group whose user-facing failures are one line on stderr and exit 2, never a traceback."""

    def main(self, args=None, prog_name=None, **extra):
        extra["standalone_mode"] = False
        try:
            rv = super().main(args=args, prog_name=prog_name or "avs", **extra)
        except InputError as e:
            _fail(str(e))
        except click.UsageError as e:
            hint = f" (see '{e.ctx.command_path} --help')" if e.ctx is not None else ""
            _fail(f"{e.format_message()}{hint}")
        except click.ClickException as e:
            _fail(e.format_message(), e.exit_code)
        except click.Abort:
            _fail("interrupted", 130)
        except OSError as e:  # the system refused (disk full, permissions): the outputs were already cleaned up
            where = f"{e.filename}: " if e.filename else ""
            _fail(f"{where}{e.strerror or e}")
        sys.exit(rv if isinstance(rv, int) else 0)


@click.group(cls=AvsGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="avs")
@click.option("-v", "--verbose", is_flag=True, help="Log what is being done.")
def cli(verbose: bool) -> None:
    """avs: TRECVID Ad-hoc Video Search toolkit."""
    logging.basicConfig(level=logging.DEBUG if verbose else logging.WARNING, format="avs: %(levelname)s: %(message)s")


def main() -> None:
    """The ``avs`` console command. Once a command is over, a process that loaded torch ends without Python's
    teardown, which spends ~0.4 s unloading torch: by then every output is written, renamed and closed, and
    worker pools are shut down. Not with Ray loaded, whose exit handler stops the processes it started."""
    try:
        cli.main()
    except SystemExit as e:
        if isinstance(e.code, int | None) and "torch" in sys.modules and "ray" not in sys.modules:
            logging.shutdown()
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(e.code or 0)
        raise
