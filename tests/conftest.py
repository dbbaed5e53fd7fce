from pathlib import Path

import pytest

DATA = Path(__file__).parent / "data"
SAMPLE_EVAL = DATA / "sample_eval"
TV21_QRELS = SAMPLE_EVAL / "avs.qrels.main.tv21.gz"
REPO = Path(__file__).parent.parent


@pytest.fixture
def run_cli():
    """Invoke the ``avs`` CLI in-process; returns click's Result (exit_code, stdout, stderr)."""
    from click.testing import CliRunner

    from avs.cli import cli

    def invoke(*args):
        return CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)

    return invoke
