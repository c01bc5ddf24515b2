"""ocl_infer.fsutil.staged_output: outputs appear whole or not at all, and never replace what is not ours."""

from pathlib import Path

import pytest

from ocl_infer.errors import BagError, ConfigError
from ocl_infer.fsutil import staged_output


def _is_ours(path: Path) -> bool:
    return (path / "ours.txt").is_file()


def _write(folder: Path, name: str = "ours.txt", text: str = "new") -> None:
    folder.mkdir()
    (folder / name).write_text(text)


def test_the_output_appears_only_at_the_end_and_nothing_else_is_left(tmp_path: Path) -> None:
    target = tmp_path / "a" / "b" / "out"
    with staged_output(target) as staged:
        assert not staged.exists() and staged.name == "out" and staged.parent.parent == target.parent
        _write(staged)
        assert not target.exists()
    assert (target / "ours.txt").read_text() == "new"
    assert [p.name for p in target.parent.iterdir()] == ["out"]


@pytest.mark.parametrize("raised", [ValueError("boom"), KeyboardInterrupt()])
def test_a_failure_leaves_the_disk_as_it_was(tmp_path: Path, raised: BaseException) -> None:
    target = tmp_path / "new" / "deeper" / "out"
    with pytest.raises(type(raised)), staged_output(target) as staged:
        _write(staged)
        raise raised
    assert list(tmp_path.iterdir()) == []  # the parent folders this call made are gone too
    old = tmp_path / "old"
    _write(old, text="old")
    with pytest.raises(type(raised)), staged_output(old, force=True, replaceable=_is_ours, kind="ours") as staged:
        _write(staged)
        raise raised
    assert (old / "ours.txt").read_text() == "old" and [p.name for p in tmp_path.iterdir()] == ["old"]


def test_an_existing_target_is_refused_unless_forced_and_of_our_kind(tmp_path: Path) -> None:
    mine = tmp_path / "mine"
    _write(mine, "keep.txt", "mine")
    with pytest.raises(BagError, match=r"mine: exists already, not overwriting \(choose another output"), \
            staged_output(mine, error=BagError):
        pytest.fail("never reached")
    for force in (False, True):
        with pytest.raises(ConfigError, match="--force") as err, \
                staged_output(mine, force=force, replaceable=_is_ours, kind="an ours folder"):
            pytest.fail("never reached")
        assert str(mine) in str(err.value)
    assert [p.name for p in mine.iterdir()] == ["keep.txt"]
    ours = tmp_path / "ours"
    _write(ours, text="old")
    (ours / "extra.txt").write_text("x")
    with staged_output(ours, force=True, replaceable=_is_ours, kind="an ours folder") as staged:
        _write(staged)
    assert sorted(p.name for p in ours.iterdir()) == ["ours.txt"] and (ours / "ours.txt").read_text() == "new"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mine", "ours"]


def test_files_links_and_empty_outputs(tmp_path: Path) -> None:
    f = tmp_path / "model.tgz"
    f.write_text("old")
    with staged_output(f, force=True, replaceable=lambda p: p.suffix == ".tgz", kind="an archive") as staged:
        staged.write_text("new")
    assert f.read_text() == "new"
    real = tmp_path / "real"
    _write(real, text="old")
    link = tmp_path / "link"
    link.symlink_to(real)
    with staged_output(link, force=True, replaceable=_is_ours, kind="ours") as staged:
        _write(staged)
    assert not link.is_symlink() and (link / "ours.txt").read_text() == "new"
    assert (real / "ours.txt").read_text() == "old"  # the link was replaced, what it pointed to is untouched
    with pytest.raises(ConfigError, match="nothing was written"), staged_output(tmp_path / "empty"):
        pass
    assert sorted(p.name for p in tmp_path.iterdir()) == ["link", "model.tgz", "real"]
