import subprocess
import sys

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
    p = subprocess.run([sys.executable, "-m", "avs", "topics", "show", str(tmp_path / "x.xml")],
                       capture_output=True, text=True)
    assert p.returncode == 2 and "Traceback" not in p.stderr and p.stderr.startswith("avs: error:")


def test_trec_eval_compat_does_not_import_torch():
    code = "import sys, trec_eval_compat.evaluate, trec_eval_compat.__main__; print('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True).stdout.strip() == "False"
