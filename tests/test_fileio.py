import pytest

from skinseg.errors import SkinsegError
from skinseg.fileio import atomic_path, write_text


def test_files_get_the_usual_permissions_not_mkstemps_0600(tmp_path):
    from skinseg import fileio

    write_text(tmp_path / "a.txt", "hi")
    assert (tmp_path / "a.txt").stat().st_mode & 0o777 == 0o666 & ~fileio._UMASK


def test_failed_block_leaves_neither_file_nor_temporary(tmp_path):
    with pytest.raises(RuntimeError), atomic_path(tmp_path / "b.bin") as tmp:
        tmp.write_bytes(b"half")
        raise RuntimeError("crash")
    assert list(tmp_path.iterdir()) == []


def test_existing_file_survives_a_failed_rewrite(tmp_path):
    target = tmp_path / "c.txt"
    target.write_text("old")
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_text("new, half")
        raise RuntimeError("crash")
    assert target.read_text() == "old"


def test_unwritable_place_is_a_clear_error(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(SkinsegError, match="cannot write here") as caught:
        write_text(blocker / "d.txt", "x")
    assert caught.value.path == blocker / "d.txt"  # the file asked for (it named its folder: issue #33's trial)


def test_an_interrupt_during_a_write_is_held_until_the_file_is_whole(tmp_path):
    import signal

    from skinseg.fileio import raise_interrupt

    target = tmp_path / "e.txt"
    with pytest.raises(KeyboardInterrupt), atomic_path(target) as tmp:
        raise_interrupt(signal.SIGINT, None)  # as if Ctrl-C arrived mid-write
        tmp.write_text("whole")
    assert target.read_text() == "whole"
    assert [p.name for p in tmp_path.iterdir()] == ["e.txt"]
    with pytest.raises(KeyboardInterrupt):  # outside a write it is raised at once
        raise_interrupt(signal.SIGTERM, None)
