"""Safe extraction of `.tgz` / `.nnef.tgz` NNEF archives into a cache folder keyed by the archive's hash."""

import hashlib
import lzma
import shutil
import tarfile
import tempfile
import zlib
from pathlib import Path, PurePosixPath

from ocl_infer.errors import ModelError
from ocl_infer.paths import cache_dir, remove_stale

MAX_TOTAL_BYTES = 2 * 2**30  # no real model we run comes near this; a bomb does
MAX_MEMBERS = 10_000  # an NNEF model has one file per variable; 100k headers took 4-30 s to refuse


def _file_digest(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()[:24]


def _check_member(archive: Path, m: tarfile.TarInfo) -> PurePosixPath | None:
    """The member's safe relative path, None to skip (directories), or ModelError when unsafe."""
    name = PurePosixPath(m.name)
    if name.is_absolute() or m.name.startswith(("/", "\\")) or ".." in name.parts:
        raise ModelError(f"{archive}: archive member {m.name!r} points outside the archive root")
    if m.issym() or m.islnk():
        raise ModelError(f"{archive}: archive member {m.name!r} is a link; links are not allowed")
    if m.isdir():
        return None
    if not m.isfile():
        raise ModelError(f"{archive}: archive member {m.name!r} is not a regular file (device, fifo, ...)")
    parts = [p for p in name.parts if p not in ("", ".")]
    return PurePosixPath(*parts) if parts else None


def extract_archive(archive: Path, max_total_bytes: int = MAX_TOTAL_BYTES) -> Path:
    """Extract `archive` into <cache>/nnef/<hash>/ and return the folder holding graph.nnef.

    Rejects members with `..` or absolute paths, links, devices; caps the total size. Writes only inside the
    cache (into a temporary folder first, renamed into place once complete)."""
    if not archive.is_file():
        raise ModelError(f"{archive}: model archive not found")
    root = cache_dir() / "nnef"
    dest = root / _file_digest(archive)
    if not (dest / ".complete").is_file():
        root.mkdir(parents=True, exist_ok=True)
        remove_stale(root, (".extract-",))  # left by a process killed mid-extraction
        tmp = Path(tempfile.mkdtemp(prefix=".extract-", dir=root))
        try:
            _extract_into(archive, tmp, max_total_bytes)
            (tmp / ".complete").write_text("ok\n")
            if (dest / ".complete").is_file():  # another process finished first: keep its copy
                shutil.rmtree(tmp, ignore_errors=True)
            else:
                if dest.exists():  # an interrupted earlier extraction
                    shutil.rmtree(dest, ignore_errors=True)
                try:
                    tmp.replace(dest)
                except OSError:  # lost a race to another process; its copy is complete
                    shutil.rmtree(tmp, ignore_errors=True)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
    graphs = sorted(dest.rglob("graph.nnef"))
    if not graphs:
        raise ModelError(f"{archive}: archive holds no graph.nnef")
    if len(graphs) > 1:
        names = [str(g.relative_to(dest)) for g in graphs]
        raise ModelError(f"{archive}: archive holds several graph.nnef files: {names}")
    return graphs[0].parent


def _extract_into(archive: Path, tmp: Path, max_total_bytes: int) -> None:
    # Truncated or corrupt streams fail mid-read, and a file member can sit where a later one needs a folder.
    try:
        _extract_members(archive, tmp, max_total_bytes)
    except (tarfile.TarError, OSError, EOFError, zlib.error, lzma.LZMAError) as err:
        raise ModelError(f"{archive}: cannot extract ({type(err).__name__}: {err})") from err


def _extract_members(archive: Path, tmp: Path, max_total_bytes: int) -> None:
    try:
        tar = tarfile.open(archive, "r:*")  # noqa: SIM115 - closed by the `with tar` below
    except (tarfile.TarError, OSError) as err:
        raise ModelError(f"{archive}: not a readable tar archive ({err})") from err
    total = 0
    with tar:
        members = []
        for m in tar:
            if len(members) >= MAX_MEMBERS:
                raise ModelError(f"{archive}: more than {MAX_MEMBERS} members")
            rel = _check_member(archive, m)
            total += max(m.size, 0)
            if total > max_total_bytes:
                raise ModelError(f"{archive}: contents exceed the {max_total_bytes} byte limit")
            if rel is not None:
                members.append((m, rel))
        for m, rel in members:
            target = tmp.joinpath(*rel.parts)
            if tmp.resolve() not in target.resolve().parents:
                raise ModelError(f"{archive}: archive member {m.name!r} points outside the archive root")
            target.parent.mkdir(parents=True, exist_ok=True)
            src = tar.extractfile(m)
            if src is None:
                raise ModelError(f"{archive}: cannot read archive member {m.name!r}")
            written = 0
            with src, target.open("wb") as out:
                for chunk in iter(lambda src=src: src.read(1 << 20), b""):
                    written += len(chunk)
                    if written > m.size:
                        raise ModelError(f"{archive}: member {m.name!r} is larger than its header says")
                    out.write(chunk)
