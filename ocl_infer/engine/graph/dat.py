"""NNEF tensor files (`.dat`): a 128-byte header then little-endian data. Validated before any allocation."""

import math
from pathlib import Path

import numpy as np

from ocl_infer.errors import ModelError

HEADER_BYTES = 128
MAX_RANK = 8
_MAGIC = (0x4E, 0xEF)
# (item type code, bits) -> numpy dtype; codes from the NNEF spec: 0 float, 1 uint, 2 quint, 3 qint, 4 int, 5 bool
_DTYPES = {
    (0, 16): np.float16, (0, 32): np.float32, (0, 64): np.float64,
    (1, 8): np.uint8, (1, 16): np.uint16, (1, 32): np.uint32, (1, 64): np.uint64,
    (4, 8): np.int8, (4, 16): np.int16, (4, 32): np.int32, (4, 64): np.int64, (5, 1): np.bool_,
}
_FLOAT_CODES = {0}


def read_dat(path: Path, expected_shape: tuple[int, ...], what: str) -> np.ndarray:
    """Read one `.dat` as float32 after checking header, dtype, shape and size against the file length.

    `what` names the tensor for messages. Integer data is accepted only where it converts exactly."""
    try:
        return _read_dat(path, expected_shape, what)
    except OSError as err:  # a label can make a name the OS refuses (too long, ...)
        raise ModelError(f"{str(path)[:200]}: cannot read the tensor file for {what} ({err.strerror})") from err


def _read_dat(path: Path, expected_shape: tuple[int, ...], what: str) -> np.ndarray:
    if not path.is_file():
        raise ModelError(f"{path}: missing tensor file for {what}")
    file_len = path.stat().st_size
    if file_len < HEADER_BYTES:
        raise ModelError(f"{path}: truncated ({file_len} bytes, the header alone is {HEADER_BYTES}) for {what}")
    with path.open("rb") as f:
        header = f.read(HEADER_BYTES)
        magic = header[0], header[1]
        if magic != _MAGIC:
            raise ModelError(f"{path}: not an NNEF tensor file (magic {magic[0]:#x} {magic[1]:#x}) for {what}")
        if header[2] != 1 or header[3] != 0:
            raise ModelError(f"{path}: unsupported NNEF tensor version {header[2]}.{header[3]} for {what}")
        words = np.frombuffer(header, dtype="<u4", offset=4)
        data_len, rank = int(words[0]), int(words[1])
        if rank > MAX_RANK:
            raise ModelError(f"{path}: rank {rank} exceeds {MAX_RANK} for {what}")
        shape = tuple(int(d) for d in words[2 : 2 + rank])
        bits, code = int(words[10]), int(words[11])
        if code == 1 and int(words[12]) != 0:  # signed-int flag of older writers
            code = 4
        dtype = _DTYPES.get((code, bits))
        if dtype is None:
            raise ModelError(f"{path}: unsupported item type (code {code}, {bits} bits) for {what}")
        if shape != tuple(expected_shape):
            raise ModelError(f"{path}: shape {list(shape)} does not match {list(expected_shape)} in graph for {what}")
        count = math.prod(shape)  # Python ints: an int64 product can wrap to 0 and pass the size check
        need = -(-count // 8) if bits == 1 else count * (bits // 8)  # logical: bits packed, first in the MSB
        if data_len != need:
            raise ModelError(f"{path}: header says {data_len} data bytes but shape {list(shape)} of "
                             f"{np.dtype(dtype).name} needs {need} for {what}")
        if file_len != HEADER_BYTES + need:
            raise ModelError(f"{path}: file is {file_len} bytes, expected {HEADER_BYTES + need} "
                             f"({'truncated' if file_len < HEADER_BYTES + need else 'trailing data'}) for {what}")
        if bits == 1:  # logical tensors are held as 0/1 floats
            return np.unpackbits(np.frombuffer(f.read(need), np.uint8))[:count].reshape(shape).astype(np.float32)
        data = np.frombuffer(f.read(need), dtype=np.dtype(dtype).newbyteorder("<"), count=count).reshape(shape)
    if code not in _FLOAT_CODES:
        as_float = data.astype(np.float32)
        if not np.array_equal(as_float.astype(data.dtype), data):
            raise ModelError(f"{path}: integer data of {what} does not fit float32 exactly")
        return as_float
    out = data.astype(np.float32)
    if not np.all(np.isfinite(out)):
        raise ModelError(f"{path}: {what} holds NaN or infinite values")
    return out


def write_dat(path: Path, data: np.ndarray, dtype: str = "scalar") -> None:
    """Write data as an NNEF tensor file of NNEF type `dtype`: scalar as float32, integer as int32, logical as
    packed bits (the engine holds all three as float32)."""
    arr = np.array(data, dtype="<f4", order="C")  # ascontiguousarray would make rank 0 into rank 1
    if dtype == "integer":
        body, code, bits = arr.astype("<i4").tobytes(), 4, 32
    elif dtype == "logical":
        body, code, bits = np.packbits(arr.reshape(-1) != 0).tobytes(), 5, 1
    else:
        body, code, bits = arr.tobytes(), 0, 32
    header = np.zeros(HEADER_BYTES // 4, dtype="<u4")
    shape = arr.shape
    header[1] = len(body)
    header[2] = len(shape)
    header[3 : 3 + len(shape)] = shape
    header[11] = bits
    header[12] = code
    raw = bytearray(header.tobytes())
    raw[0:4] = bytes((0x4E, 0xEF, 1, 0))
    path.write_bytes(bytes(raw[:4]) + bytes(raw[4:]) + body)
