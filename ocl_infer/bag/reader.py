"""Open and inspect rosbag2 bags (sqlite3 or mcap, folder or single storage file) with clear errors."""

import struct
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from rosbags.rosbag2 import Reader, ReaderError

from ocl_infer.bag.typestore import CAMERA_TYPES
from ocl_infer.errors import BagError

STORAGE_SUFFIXES = {".db3": "sqlite3", ".mcap": "mcap"}


@dataclass(frozen=True)
class TopicSummary:
    name: str
    msgtype: str
    count: int

    @property
    def is_camera(self) -> bool:
        return self.msgtype in CAMERA_TYPES


@dataclass(frozen=True)
class BagInfo:
    path: Path
    storage: str
    start_ns: int
    end_ns: int
    message_count: int
    topics: tuple[TopicSummary, ...]

    @property
    def duration_s(self) -> float:
        return max(0, self.end_ns - self.start_ns) / 1e9

    def topic(self, name: str) -> TopicSummary | None:
        return next((t for t in self.topics if t.name == name), None)


def _storage_of(path: Path) -> str:
    files = [path] if path.is_file() else sorted(path.iterdir())
    for f in files:
        if f.suffix in STORAGE_SUFFIXES:
            return STORAGE_SUFFIXES[f.suffix]
    return "unknown"


def open_bag(path: str | Path) -> Reader:
    """An opened rosbags Reader; BagError naming the path and the cause otherwise. Close it when done."""
    path = Path(path)
    if not path.exists():
        raise BagError(f"{path}: no such bag (a rosbag2 folder, or a .db3/.mcap file)")
    if path.is_dir() and not (path / "metadata.yaml").is_file():
        raise BagError(f"{path}: not a rosbag2 folder (no metadata.yaml)")
    if path.is_file() and path.suffix not in STORAGE_SUFFIXES:
        raise BagError(
            f"{path}: unknown bag format {path.suffix or '(no suffix)'!r}; "
            "expected a rosbag2 folder or a .db3 (sqlite3) / .mcap file (ROS 1 .bag is not supported)"
        )
    try:
        reader = Reader(path)
        reader.open()
    except (ReaderError, FileNotFoundError, KeyError, ValueError) as err:
        raise BagError(f"{path}: cannot read bag: {err}") from err
    except Exception as err:  # the storage plugins raise sqlite3/mcap errors of their own on corrupt files
        raise BagError(f"{path}: cannot read bag ({type(err).__name__}: {err})") from err
    return reader


def inspect_bag(path: str | Path) -> BagInfo:
    """Topics, types, counts and time span of a bag."""
    path = Path(path)
    reader = open_bag(path)
    try:
        topics = tuple(
            TopicSummary(name, info.msgtype or "?", info.msgcount)
            for name, info in sorted(reader.topics.items())
        )
        count = reader.message_count
        start, end = (reader.start_time, reader.end_time) if count else (0, 0)
        return BagInfo(path, _storage_of(path), start, end, count, topics)
    finally:
        reader.close()


def select_camera_topics(info: BagInfo, requested: Sequence[str] | None = None) -> tuple[list[str], list[str]]:
    """(camera topics to play, other topics ignored). Default: every Image and CompressedImage topic.

    A requested topic that is missing or not a camera type is a BagError naming it and what the bag has.
    """
    cameras = [t.name for t in info.topics if t.is_camera]
    if requested:
        for name in requested:
            t = info.topic(name)
            if t is None:
                raise BagError(f"{info.path}: no topic {name} in the bag (has {', '.join(cameras) or 'no camera'})")
            if not t.is_camera:
                raise BagError(f"{info.path}: topic {name} is {t.msgtype}, not an Image or CompressedImage")
        selected = list(dict.fromkeys(requested))
    else:
        selected = cameras
    if not selected:
        have = ", ".join(f"{t.name} ({t.msgtype})" for t in info.topics) or "no topics"
        raise BagError(f"{info.path}: no sensor_msgs/Image or CompressedImage topic in the bag (has {have})")
    ignored = [t.name for t in info.topics if t.name not in selected]
    return selected, ignored


def header_stamp_ns(raw: bytes | memoryview) -> int:
    """The header stamp of a CDR message that starts with std_msgs/Header, without deserializing it."""
    if len(raw) < 12:
        raise BagError(f"message of {len(raw)} bytes is too short for a CDR header")
    endian = "<" if raw[1] == 1 else ">"
    sec, nanosec = struct.unpack_from(endian + "iI", raw, 4)
    return sec * 1_000_000_000 + nanosec


def iter_raw_messages(reader: Reader, topics: Sequence[str]) -> Iterator[tuple[str, str, int, bytes]]:
    """(topic, msgtype, bag time ns, CDR bytes) in bag time order, for `topics` only."""
    conns = [c for c in reader.connections if c.topic in set(topics)]
    if not conns:
        return
    for conn, timestamp, raw in reader.messages(connections=conns):
        yield conn.topic, conn.msgtype, timestamp, raw
