"""AtomicOutput on the real file system: the target appears whole at commit() or not at all."""

import os
import stat

import pytest

from magicktune.atomic import AtomicOutput, partial_path, writable_target


def mode_of(path):
    return stat.S_IMODE(os.stat(path).st_mode)


def test_nothing_is_created_before_open(tmp_path):
    output = AtomicOutput(tmp_path / "out.gif")
    assert os.path.dirname(output.partial) == str(tmp_path)
    assert os.listdir(tmp_path) == []
    output.discard()
    assert os.listdir(tmp_path) == []


def test_commit_moves_the_whole_file_into_place(tmp_path):
    output = AtomicOutput(tmp_path / "out.gif")
    stream = output.open()
    stream.write(b"GIF89a")
    assert os.listdir(tmp_path) == [os.path.basename(output.partial)]
    assert not (tmp_path / "out.gif").exists()
    assert output.commit() == str(tmp_path / "out.gif")
    assert stream.closed
    assert os.listdir(tmp_path) == ["out.gif"]
    assert (tmp_path / "out.gif").read_bytes() == b"GIF89a"


def test_committed_file_keeps_the_mode_of_the_file_it_replaces(tmp_path):
    target = tmp_path / "out.gif"
    target.write_bytes(b"old")
    target.chmod(0o640)
    with AtomicOutput(target) as output:
        output.open().write(b"new")
    assert target.read_bytes() == b"new"
    assert mode_of(target) == 0o640
    assert os.listdir(tmp_path) == ["out.gif"]


def test_new_file_gets_the_umask_mode_as_open_would(tmp_path):
    old = os.umask(0o027)
    try:
        with AtomicOutput(tmp_path / "out.gif") as output:
            output.open().write(b"x")
    finally:
        os.umask(old)
    assert mode_of(tmp_path / "out.gif") == 0o640


@pytest.mark.parametrize("mode", [0o600, 0o644])
def test_a_given_mode_is_set_exactly_and_over_the_replaced_files(tmp_path, mode):
    target = tmp_path / "policy.xml"
    target.write_text("old")
    target.chmod(0o666)
    with AtomicOutput(target, mode=mode) as output:
        stream = output.open()
        assert mode_of(output.partial) & ~mode == 0  # never more open than asked, even while written
        stream.write(b"<policymap/>\n")
    assert target.read_text() == "<policymap/>\n"
    assert mode_of(target) == mode


def test_discard_leaves_nothing_and_keeps_the_old_file(tmp_path):
    target = tmp_path / "out.gif"
    target.write_bytes(b"old")
    output = AtomicOutput(target)
    stream = output.open()
    stream.write(b"half")
    output.discard()
    assert stream.closed
    assert os.listdir(tmp_path) == ["out.gif"]
    assert target.read_bytes() == b"old"
    output.discard()  # a second discard is a no-op
    with pytest.raises(ValueError, match="discarded"):
        output.commit()
    assert os.listdir(tmp_path) == ["out.gif"]


def test_discard_and_commit_after_commit_change_nothing(tmp_path):
    output = AtomicOutput(tmp_path / "out.gif")
    output.open().write(b"done")
    output.commit()
    output.discard()
    assert output.commit() == str(tmp_path / "out.gif")
    assert (tmp_path / "out.gif").read_bytes() == b"done"
    assert os.listdir(tmp_path) == ["out.gif"]


def test_a_failure_inside_leaves_nothing(tmp_path):
    target = tmp_path / "out.gif"
    with pytest.raises(RuntimeError, match="renderer died"):
        with AtomicOutput(target) as output:
            output.open().write(b"half a frame")
            raise RuntimeError("renderer died")
    assert os.listdir(tmp_path) == []


def test_a_failing_rename_leaves_nothing(tmp_path):
    """The target turned into a directory while the file was written: the rename fails, the partial goes."""
    output = AtomicOutput(tmp_path / "out.gif")
    output.open().write(b"data")
    (tmp_path / "out.gif").mkdir()
    (tmp_path / "out.gif" / "keep").write_bytes(b"")
    with pytest.raises(OSError):
        output.commit()
    assert os.listdir(tmp_path) == ["out.gif"]
    assert output.discarded and not output.committed


def test_a_file_another_program_wrote_at_partial_is_committed(tmp_path):
    """The tuned writer hands `partial` to convert, which writes it; commit() then renames it."""
    output = AtomicOutput(tmp_path / "out.gif")
    with open(output.partial, "wb") as stream:
        stream.write(b"GIF89a from convert")
    output.commit()
    assert os.listdir(tmp_path) == ["out.gif"]
    assert (tmp_path / "out.gif").read_bytes() == b"GIF89a from convert"


def test_a_name_already_taken_is_left_alone(tmp_path):
    output = AtomicOutput(tmp_path / "out.gif")
    with open(output.partial, "wb") as stream:
        stream.write(b"someone else's")
    with pytest.raises(FileExistsError):
        output.open()
    output.discard()
    with open(output.partial, "rb") as stream:
        assert stream.read() == b"someone else's"


def test_writes_through_a_symlink_to_the_real_file(tmp_path):
    real = tmp_path / "real.gif"
    real.write_bytes(b"old")
    (tmp_path / "link.gif").symlink_to(real)
    with AtomicOutput(tmp_path / "link.gif") as output:
        output.open().write(b"new")
    assert (tmp_path / "link.gif").is_symlink()
    assert real.read_bytes() == b"new"
    assert sorted(os.listdir(tmp_path)) == ["link.gif", "real.gif"]


def test_bad_targets_fail_before_anything_is_written(tmp_path):
    with pytest.raises(FileNotFoundError, match=f"directory {tmp_path / 'missing'} does not exist"):
        AtomicOutput(tmp_path / "missing" / "out.gif")
    with pytest.raises(IsADirectoryError, match="is a directory"):
        writable_target(tmp_path)
    assert os.listdir(tmp_path) == []


def test_partial_path_is_hidden_beside_the_target_and_keeps_the_suffix(tmp_path):
    first, second = partial_path(tmp_path / "out.gif"), partial_path(tmp_path / "out.gif")
    assert first != second
    assert os.path.dirname(first) == str(tmp_path)
    name = os.path.basename(first)
    assert name.startswith(".out.") and name.endswith(".partial.gif")
