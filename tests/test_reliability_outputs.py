"""Outputs: never half-written, never over something that is not a result file, never over an input, and a
second writer never silently replaces the first."""

import errno
import os
from pathlib import Path

import pytest

from avs.errors import InputError
from avs.formats import fileio

from conftest import DATA

GOOD_RUN = DATA / "runs" / "good_2021.xml"


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".part"))


def test_device_and_folders_are_never_replaced(tmp_path):
    with pytest.raises(InputError, match="is not a regular file"):
        fileio.check_writable("/dev/null", force=True)
    with pytest.raises(InputError, match="is not a regular file"):
        fileio.atomic_write("/dev/null", "x", force=True)
    assert Path("/dev/null").is_char_device()
    with pytest.raises(InputError, match="is not a regular file"):
        fileio.check_writable(tmp_path, force=True)


def test_a_file_where_a_folder_should_be(tmp_path):
    (tmp_path / "f").write_text("x")
    with pytest.raises(InputError, match=r"cannot write here: .*/f is not a folder"):
        fileio.check_writable(tmp_path / "f" / "deeper" / "out.xml")
    with pytest.raises(InputError, match="cannot write here"):
        fileio.atomic_write(tmp_path / "f" / "out.xml", "x")


def test_output_may_not_be_an_input(tmp_path):
    src = tmp_path / "in.xml"
    src.write_bytes(GOOD_RUN.read_bytes())
    with pytest.raises(InputError, match="is also an input"):
        fileio.check_writable(src, force=True, inputs=[tmp_path / "other", src])
    os.link(src, tmp_path / "hard.xml")  # the same file under another name
    with pytest.raises(InputError, match="is also an input"):
        fileio.check_writable(tmp_path / "hard.xml", force=True, inputs=[src])


@pytest.mark.parametrize(
    "args",
    [
        ["run", "convert", "{src}", "{src}", "--force"],
        ["run", "fuse", "{src}", "--out", "{src}", "--force"],
        ["topics", "convert", "{topics}", "{topics}", "--force"],
        ["search", "--topics", "{topics}", "--model", "{tmp}", "--index", "{src}", "--out", "{src}", "--force"],
        ["search", "--topics", "{topics}", "--model", "{tmp}", "--index", "{src}", "--out", "{topics}", "--force"],
    ],
)
def test_cli_refuses_to_overwrite_its_input(run_cli, tmp_path, args):
    src, topics = tmp_path / "r.xml", tmp_path / "t.txt"
    src.write_bytes(GOOD_RUN.read_bytes())
    topics.write_text("661\ta person paddling kayak in the water\n")
    before = (src.read_bytes(), topics.read_bytes())
    r = run_cli(*[a.format(src=src, topics=topics, tmp=tmp_path) for a in args])
    assert r.exit_code == 2 and "is also an input of this command" in r.stderr and r.stderr.count("\n") == 1
    assert (src.read_bytes(), topics.read_bytes()) == before


def test_a_file_that_appears_meanwhile_is_kept(tmp_path):
    out = tmp_path / "run.xml"
    with pytest.raises(InputError, match="written by someone else meanwhile"):
        with fileio.atomic_open(out) as f:
            f.write("mine")
            out.write_text("theirs")  # another process finished first
    assert out.read_text() == "theirs" and leftovers(tmp_path) == []
    with fileio.atomic_open(out, force=True) as f:  # --force replaces it
        f.write("mine")
    assert out.read_text() == "mine"


def test_several_files_are_published_together_or_not_at_all(tmp_path, monkeypatch):
    real_fdopen = os.fdopen
    opened = []

    class FullDisk:
        def __init__(self, raw):
            self.raw = raw

        def write(self, data):
            raise OSError(errno.ENOSPC, "No space left on device")

        def __getattr__(self, name):
            return getattr(self.raw, name)

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.raw.close()

    def fdopen(fd, *a, **k):
        opened.append(fd)
        raw = real_fdopen(fd, *a, **k)
        return FullDisk(raw) if len(opened) == 2 else raw

    monkeypatch.setattr(fileio.os, "fdopen", fdopen)
    (tmp_path / "old.trec").write_text("kept")
    with pytest.raises(OSError, match="No space left"):
        fileio.atomic_write_all({tmp_path / "new.xml": "x", tmp_path / "old.trec": "y"}, force=True)
    assert not (tmp_path / "new.xml").exists() and (tmp_path / "old.trec").read_text() == "kept"
    assert leftovers(tmp_path) == []


def test_comparison_folder_is_removed_when_its_files_cannot_be_written(tmp_path, monkeypatch):
    from avs.eval import report

    def full(files, force=False):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(report, "atomic_write_all", full)
    with pytest.raises(OSError):
        report.write_outputs(tmp_path / "cmp", {"a.csv": "x"})
    assert not (tmp_path / "cmp").exists()


def test_os_errors_are_one_line(run_cli, tmp_path, monkeypatch):
    from avs.formats import topics

    def denied(*a, **k):
        raise PermissionError(errno.EACCES, "Permission denied", str(tmp_path / "t.txt"))

    monkeypatch.setattr(topics, "read_topics", denied)
    (tmp_path / "t.txt").write_text("661\tx\n")
    r = run_cli("topics", "convert", tmp_path / "t.txt", tmp_path / "o.txt")
    assert r.exit_code == 2 and r.stderr == f"avs: error: {tmp_path / 't.txt'}: Permission denied\n"


@pytest.mark.parametrize("run_id", ["../escape", "a/b", "..", ".hidden", "", " ", "tab\there"])
def test_run_id_is_a_name_not_a_path(run_cli, tmp_path, monkeypatch, run_id):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "t.txt").write_text("661\tx\n")
    r = run_cli("search", "--topics", "t.txt", "--model", tmp_path, "--index", tmp_path / "i.h5", "--run-id", run_id)
    assert r.exit_code == 2 and "--run-id" in r.stderr and r.stderr.count("\n") == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["t.txt"]


def test_trec_destination_is_checked_before_anything_is_written(run_cli, tmp_path):
    (tmp_path / "t.txt").write_text("661\tx\n")
    (tmp_path / "file").write_text("")
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
        tmp_path / "file" / "r.trec",
    )
    assert r.exit_code == 2 and "is not a folder" in r.stderr and not (tmp_path / "r.xml").exists()


@pytest.mark.parametrize(
    "args,message",
    [
        (["topics", "convert", "{t}", "{o}.xml", "--year", "2021-2019"], "earliest first"),
        (["topics", "convert", "{t}", "{o}.xml", "--year", "2021-2021"], "earliest first"),
        (["collection", "import", "npy", "{t}", "--ids", "{t}", "--out", "{o}.h5", "--name", ""], "non-blank"),
        (["collection", "import", "npy", "{t}", "--ids", "{t}", "--out", "{o}.h5", "--name", "a\x07b"], "printable"),
    ],
)
def test_bad_option_values(run_cli, tmp_path, args, message):
    (tmp_path / "t.txt").write_text("661\tx\n")
    r = run_cli(*[a.format(t=tmp_path / "t.txt", o=tmp_path / "o") for a in args])
    assert r.exit_code == 2 and message in r.stderr and r.stderr.count("\n") == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["t.txt"]
