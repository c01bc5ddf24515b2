"""Writing what a user names (a model folder, an archive, a bag) without ever losing what was there.

Every command that writes an output the user names (`convert`, `import-darknet`, `prepare-model`, `make-bag`,
`replay -o`) goes through `staged_output`: the output is built under a hidden temporary folder beside the
target, on the same file system, and renamed into place only when the whole job (checks included) has
succeeded. So an error or Ctrl-C leaves the disk as it was, and a reader never sees half an output (a replay
stopped by Ctrl-C has succeeded: its closed bag is moved into place). An existing target is refused, unless the
caller forces it and the target is of the kind the command writes (`replaceable`): `--force` may replace an old
NNEF model folder, never a folder of photos that happens to have that name.
"""

import contextlib
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

from ocl_infer.errors import ConfigError, OclInferError


def refuse_existing(target: Path, force: bool = False, replaceable: Callable[[Path], bool] | None = None,
                    kind: str = "", error: type[OclInferError] = ConfigError) -> None:
    """Raise `error` naming `target` when it exists (a dangling link counts), unless `force` is set and
    `replaceable(target)` says it is a `kind` this command writes. The message says what to do."""
    if not os.path.lexists(target):
        return
    if replaceable is None:
        raise error(f"{target}: exists already, not overwriting (choose another output or delete it)")
    if not force:
        raise error(f"{target}: exists already, not overwriting (--force replaces {kind})")
    if not replaceable(target):
        raise error(f"{target}: exists already and is not {kind}, so not even --force replaces it")


@contextlib.contextmanager
def staged_output(target: str | Path, force: bool = False, replaceable: Callable[[Path], bool] | None = None,
                  kind: str = "", error: type[OclInferError] = ConfigError) -> Iterator[Path]:
    """Yield a path (not yet existing) to write the output to, in a hidden folder beside `target`; when the
    block ends without an exception, move it to `target`, replacing an old one only as `refuse_existing`
    allows (checked before and again at the end). When the block raises, or the move fails, everything
    written is removed, parent folders this call created included, and `target` is untouched."""
    target = Path(target)
    refuse_existing(target, force, replaceable, kind, error)
    created = _make_parents(target.parent)
    done = False
    stage = None
    try:
        stage = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-", dir=target.parent))
        staged = stage / target.name
        yield staged
        if not os.path.lexists(staged):
            raise error(f"{target}: nothing was written")
        refuse_existing(target, force, replaceable, kind, error)  # it may have appeared meanwhile
        _move_into_place(staged, target, stage / f"{target.name}.old")
        done = True
    finally:
        if stage is not None:
            shutil.rmtree(stage, ignore_errors=True)  # what is left: a failed output, or the replaced one
        if not done:
            for folder in reversed(created):
                with contextlib.suppress(OSError):
                    folder.rmdir()  # only if still empty


def _make_parents(folder: Path) -> list[Path]:
    """Create `folder` and its missing parents; return the ones created, outermost first."""
    missing = []
    while not folder.exists():
        missing.append(folder)
        folder = folder.parent
    for p in reversed(missing):
        p.mkdir(exist_ok=True)
    return list(reversed(missing))


def _move_into_place(staged: Path, target: Path, old: Path) -> None:
    """Rename `staged` to `target`; an existing target (forced) is first renamed to `old` (in the stage, which
    the caller removes), and renamed back if the second rename fails. A link is moved, never followed."""
    if not os.path.lexists(target):
        staged.rename(target)
        return
    target.rename(old)
    try:
        staged.rename(target)
    except BaseException:
        old.rename(target)
        raise
