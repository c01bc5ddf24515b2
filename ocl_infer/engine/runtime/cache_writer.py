"""Fill the on-disk program cache outside the frame path, in a low-priority child process.

Reading a program's binary back (clGetProgramInfo BINARIES) makes PoCL compile every kernel once more, for a
generic work-group size: about 0.25 s per kernel, with the GIL held. Done inline it doubled YOLOv3-tiny's cold
start. So the engine builds from source, warms up, and hands the (path, source, options) of what it compiled to
a child that builds the same programs again (a hit in the driver's own cache), reads their binaries and writes
them. The next start loads binaries. The child runs at nice 19, one writer at a time (a lock file), skips
entries already on disk, and writes each file atomically, so an interrupted writer leaves nothing half-written.

    python -m ocl_infer.engine.runtime.cache_writer JOBS.json   (what the engine starts; JOBS is deleted)
"""

import contextlib
import fcntl
import json
import logging
import os
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Iterable, Iterator
from pathlib import Path

log = logging.getLogger(__name__)

Job = tuple[Path, str, str]  # cache file, source, build options


def start_writer(platform: str, device: str, jobs: Iterable[Job]) -> subprocess.Popen[bytes] | None:
    """Start a detached child that writes the binaries of `jobs` for the device named `device` on `platform`.
    None when there is nothing to do or the child cannot start (the cache only saves start time)."""
    todo = {str(path): (source, options) for path, source, options in jobs if not path.is_file()}
    if not todo:
        return None
    folder = Path(next(iter(todo))).parent
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(dir=folder, prefix=".jobs-", suffix=".json")
        with os.fdopen(fd, "w") as f:
            json.dump({"platform": platform, "device": device,
                       "jobs": [{"path": p, "source": s, "options": o} for p, (s, o) in todo.items()]}, f)
    except OSError as err:
        log.debug("program cache writer not started: %s", err)
        return None
    try:
        # own session: a Ctrl-C to the node's process group does not cut a write short (they are atomic anyway)
        return subprocess.Popen([sys.executable, "-m", __name__, name], stdin=subprocess.DEVNULL,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    except OSError as err:
        log.debug("program cache writer not started: %s", err)
        Path(name).unlink(missing_ok=True)
        return None


def write_jobs(job_file: Path) -> int:
    """Build every job of `job_file` on its device and write the binaries not yet on disk; returns how many."""
    import pyopencl as cl

    from ocl_infer.engine.runtime.program_cache import save_binary
    from ocl_infer.paths import remove_stale

    spec = json.loads(job_file.read_text())
    device = next((d for p in cl.get_platforms() if p.name == spec["platform"] for d in p.get_devices()
                   if d.name == spec["device"]), None)
    if device is None:
        return 0
    context = cl.Context([device])
    written = 0
    with _writer_lock(job_file.parent):
        # job files, prewarm plans and half-written binaries of processes killed long ago
        remove_stale(job_file.parent, (".jobs-", ".prewarm-", ".tmp-"))
        for job in spec["jobs"]:
            path = Path(job["path"])
            if path.is_file():  # another writer got there first
                continue
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                try:
                    prg = cl.Program(context, job["source"]).build(options=job["options"].split(), devices=[device])
                except cl.Error:
                    continue
            written += save_binary(path, prg)
    return written


LOCK_WAIT_S = 600.0  # a writer stuck longer than this (a hung driver) is not waited for


@contextlib.contextmanager
def _writer_lock(folder: Path) -> Iterator[None]:
    """Writers queue (one core for them, at most); TimeoutError after LOCK_WAIT_S."""
    with open(folder / ".writer.lock", "a") as f:
        deadline = time.monotonic() + LOCK_WAIT_S
        while True:
            try:
                fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise TimeoutError(f"{folder}: another program cache writer holds the lock") from None
                time.sleep(0.2)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def main(argv: list[str]) -> int:
    job_file = Path(argv[0])
    try:
        write_jobs(job_file)
    except TimeoutError:  # the next start compiles again and hands the job to a new writer
        return 1
    finally:
        job_file.unlink(missing_ok=True)
    return 0


if __name__ == "__main__":
    with contextlib.suppress(OSError):
        os.nice(19)  # only ever behind the frames of the process that started us
    sys.exit(main(sys.argv[1:]))
