import subprocess
import sys
from pathlib import Path

from avs import __version__


def test_version(run_cli):
    r = run_cli("--version")
    assert r.exit_code == 0 and __version__ in r.stdout


def test_user_error_is_one_line_exit_2(run_cli, tmp_path):
    r = run_cli("topics", "show", tmp_path / "missing.xml")
    assert r.exit_code == 2
    assert r.stderr == f"avs: error: {tmp_path / 'missing.xml'}: No such file or directory\n"


def test_bad_option_is_one_line_exit_2(run_cli):
    r = run_cli("topics", "show", "--nope", "x")
    assert r.exit_code == 2
    assert r.stderr.startswith("avs: error: No such option") and r.stderr.count("\n") == 1


def test_console_script_installed_no_traceback(tmp_path):
    p = subprocess.run(
        [sys.executable, "-m", "avs", "topics", "show", str(tmp_path / "x.xml")], capture_output=True, text=True
    )
    assert p.returncode == 2 and "Traceback" not in p.stderr and p.stderr.startswith("avs: error:")


def test_console_command_ends_without_teardown_and_loses_nothing(tmp_path):
    """A command that loaded torch ends through os._exit: its piped output, exit code and files all arrive."""
    out = tmp_path / "run.xml"
    cmd = [sys.executable, "-m", "avs", "search", "--topics", "topics/tv20.xml", "--out", str(out), "--topk", "5"]
    p = subprocess.run(cmd, capture_output=True, text=True, cwd=Path(__file__).parents[1])
    assert p.returncode == 0 and p.stdout.startswith("searched 20 topics") and p.stdout.endswith("`avs demo`)\n")
    from avs.formats.runs import read_run

    assert [len(t.items) for t in read_run(out).topics.values()] == [5] * 20
    p = subprocess.run(cmd, capture_output=True, text=True, cwd=Path(__file__).parents[1])
    assert p.returncode == 2 and p.stderr == f"avs: error: {out}: already exists (use --force to overwrite)\n"


def test_trec_eval_compat_does_not_import_torch():
    code = "import sys, trec_eval_compat.evaluate, trec_eval_compat.__main__; print('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True).stdout.strip() == "False"


def test_demo_never_deletes_a_foreign_folder(tmp_path):
    from avs.demo import builtin as demo
    from avs.errors import InputError

    (tmp_path / "mine.txt").write_text("precious")
    import pytest

    with pytest.raises(InputError, match="is not an avs demo folder"):
        demo.build(tmp_path, force=True)
    assert (tmp_path / "mine.txt").read_text() == "precious"


def test_bad_option_values_are_one_line_errors(run_cli, tmp_path):
    r = run_cli("run", "fuse", "a.xml", "--out", tmp_path / "f.trec", "--weights", "nan,1")
    assert r.exit_code == 2 and "weights must be finite" in r.stderr
    r = run_cli(
        "index", "--model", tmp_path, "--collection", tmp_path / "s.h5", "--out", tmp_path / "i.h5", "--device", "bogus"
    )
    assert r.exit_code == 2 and "is not a torch device" in r.stderr
    r = run_cli(
        "search",
        "--topics",
        tmp_path / "t.txt",
        "--model",
        tmp_path,
        "--index",
        tmp_path / "i.h5",
        "--out",
        tmp_path / "r.xml",
        "--trec",
        tmp_path / "r.xml",
    )
    assert r.exit_code == 2 and "name the same file" in r.stderr
    (tmp_path / "t.txt").write_text("641 a dog\n")
    (tmp_path / "afile").write_text("")
    r = run_cli("topics", "convert", tmp_path / "t.txt", tmp_path / "afile" / "out.xml")
    assert r.exit_code == 2 and "cannot write here" in r.stderr and r.stderr.count("\n") == 1


def test_json_has_no_nan(run_cli, tmp_path):
    import json

    p = tmp_path / "t.txt"
    p.write_text("9001 something\n")
    data = json.loads(run_cli("topics", "show", p, "--format", "json").stdout)
    assert data[0]["object"] is None


def test_the_cli_imports_only_what_a_command_uses():
    """Starting `avs` (or `python -m trec_eval_compat`) pulls in neither torch nor pandas: each command imports
    what it needs when it runs."""
    import subprocess
    import sys

    for module in ("avs.cli", "trec_eval_compat.__main__"):
        code = f"import sys, {module}; print(sorted(m for m in ('torch', 'pandas', 'h5py') if m in sys.modules))"
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
        assert out.strip() == "[]", (module, out)
