"""Compiled OpenCL programs, cached in memory per context and on disk across processes.

Disk key = source + build options + device + driver + platform version (as pyopencl's own cache), so a second
start loads binaries instead of compiling. A binary that fails to load or lacks kernels is rebuilt from source.
Programs built from source are only listed in `pending`: reading their binaries back is slow on PoCL, so
cache_writer.py writes them from a low-priority child process after the engine has started."""

import hashlib
import logging
import os
import tempfile
import warnings
from pathlib import Path

import pyopencl as cl

from ocl_infer.errors import KernelError
from ocl_infer.paths import cache_dir

log = logging.getLogger(__name__)


def program_cache_dir() -> Path:
    return cache_dir() / "kernels"


def program_key(device: cl.Device, source: str, options: str) -> str:
    """The disk cache name of a program: what it is built from and for."""
    h = hashlib.sha256()
    for part in (source, options, device.name, device.vendor, device.driver_version, device.version,
                 device.platform.version, cl.VERSION_TEXT):
        h.update(part.encode())
        h.update(b"\0")
    return h.hexdigest()[:32]


def on_disk(device: cl.Device, source: str, options: str) -> bool:
    return (program_cache_dir() / f"{program_key(device, source, options)}.bin").is_file()


class ProgramCache:
    """Programs of one context and device. `get` never compiles the same source + options twice."""

    def __init__(self, context: cl.Context, device: cl.Device, disk: bool = True) -> None:
        self.context = context
        self.device = device
        self.disk = disk
        self._programs: dict[str, cl.Program] = {}
        self.hits = 0
        self.compiles = 0
        # (disk path, source, options) of programs built from source whose binaries are not on disk yet
        self.pending: list[tuple[Path, str, str]] = []

    def key(self, source: str, options: str) -> str:
        return program_key(self.device, source, options)

    def get(self, source: str, options: str, what: str) -> cl.Program:
        """The built program; `what` names the kernel for error messages."""
        key = self.key(source, options)
        prg = self._programs.get(key)
        if prg is not None:
            return prg
        path = program_cache_dir() / f"{key}.bin"
        if self.disk and path.is_file():
            prg = self._from_binary(path, options)
            if prg is not None:
                self.hits += 1
                self._programs[key] = prg
                return prg
        try:
            with warnings.catch_warnings():  # compiler remarks are not actionable for users; failures raise
                warnings.simplefilter("ignore", cl.CompilerWarning)
                prg = cl.Program(self.context, source).build(options=options.split(), devices=[self.device])
        except cl.RuntimeError as err:  # build failure: carry the compiler's log
            raise KernelError(f"{what}: OpenCL build failed with options '{options}': {err}") from err
        self.compiles += 1
        if self.disk:
            self.pending.append((path, source, options))
        self._programs[key] = prg
        return prg

    def take_pending(self) -> list[tuple[Path, str, str]]:
        """The programs still to be written to disk, handed over once (to cache_writer)."""
        out, self.pending = self.pending, []
        return out

    def _from_binary(self, path: Path, options: str) -> cl.Program | None:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", cl.CompilerWarning)
                prg = cl.Program(self.context, [self.device], [path.read_bytes()]).build(options=options.split())
            if not prg.get_info(cl.program_info.KERNEL_NAMES):
                raise ValueError("program binary has no kernels")
            return prg
        except (cl.Error, ValueError, OSError) as err:
            log.warning("program cache entry %s unusable (%s); rebuilding", path.name, err)
            path.unlink(missing_ok=True)
            return None


def save_binary(path: Path, prg: cl.Program) -> bool:
    """Write `prg`'s binary to `path` atomically (a reader never sees half a file). False if it could not."""
    tmp = None
    try:
        binaries = prg.get_info(cl.program_info.BINARIES)
        if not binaries or not binaries[0]:
            return False
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
        with os.fdopen(fd, "wb") as f:
            f.write(binaries[0])
        Path(tmp).replace(path)
        return True
    except (cl.Error, OSError) as err:  # a read-only cache only costs start time
        log.debug("could not save program binary %s: %s", path, err)
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)
        return False
