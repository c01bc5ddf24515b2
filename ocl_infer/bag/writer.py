"""Write a rosbag2 of camera frames from real footage (`ocl-infer make-bag`).

The bag is built under a hidden temporary folder beside the target and renamed into place when complete
(ocl_infer.fsutil), so an error or Ctrl-C leaves nothing half-written; an existing output is replaced only when
forced, and only if it is a bag.
"""

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from rosbags.interfaces import Qos, QosDurability, QosHistory, QosLiveliness, QosReliability, QosTime
from rosbags.rosbag2 import StoragePlugin, Writer, WriterError

from ocl_infer.bag.footage import read_frames
from ocl_infer.bag.images import compressed_message, image_message
from ocl_infer.bag.typestore import COMPRESSED_IMAGE, IMAGE, build_typestore
from ocl_infer.errors import BagError, ConfigError
from ocl_infer.fsutil import staged_output

STORAGE_FORMATS = {"sqlite3": StoragePlugin.SQLITE3, "mcap": StoragePlugin.MCAP}
BAG_VERSION = 9  # what rosbag2 in Jazzy/Kilted writes
BAG_FOLDER = "a rosbag2 folder (one holding metadata.yaml)"

# What a camera driver typically offers; `ros2 bag play` re-offers it.
CAMERA_QOS = Qos(
    history=QosHistory.KEEP_LAST,
    depth=1,
    reliability=QosReliability.RELIABLE,
    durability=QosDurability.VOLATILE,
    deadline=QosTime(0, 0),
    lifespan=QosTime(0, 0),
    liveliness=QosLiveliness.AUTOMATIC,
    liveliness_lease_duration=QosTime(0, 0),
    avoid_ros_namespace_conventions=False,
)


@dataclass(frozen=True)
class ImageBagOptions:
    """How `write_image_bag` stamps and encodes frames; checked on construction."""

    topic: str = "/camera/image_raw"
    rate_hz: float = 30.0
    compressed: bool = False
    storage: str = "sqlite3"
    frame_id: str = "camera"
    max_frames: int | None = None
    start_ns: int | None = None  # stamp of the first frame; None: now
    jpeg_quality: int = 90
    # Several cameras from one footage (the multi-camera demo): camera k > 0 on topic <ns>_<k+1>/<name>, its
    # frames mirrored on odd k and stamped k/cameras of a period later, so the cameras are not in lock-step.
    cameras: int = 1

    def __post_init__(self) -> None:
        if not self.topic.startswith("/") or " " in self.topic or self.topic.endswith("/"):
            raise ConfigError(f"topic: {self.topic!r} is not an absolute ROS topic name like /camera/image_raw")
        if not self.rate_hz > 0:
            raise ConfigError(f"rate: must be > 0 Hz, got {self.rate_hz}")
        if self.storage not in STORAGE_FORMATS:
            raise ConfigError(f"format: unknown bag storage {self.storage!r} (use {' or '.join(STORAGE_FORMATS)})")
        if self.max_frames is not None and self.max_frames < 1:
            raise ConfigError(f"max_frames: must be ≥ 1, got {self.max_frames}")
        if not 1 <= self.jpeg_quality <= 100:
            raise ConfigError(f"jpeg_quality: must be in 1..100, got {self.jpeg_quality}")
        if not 1 <= self.cameras <= 16:
            raise ConfigError(f"cameras: must be in 1..16, got {self.cameras}")

    @property
    def topics(self) -> tuple[str, ...]:
        """The camera topics: `topic`, then <ns>_2/<name>, <ns>_3/<name>, ... ."""
        ns, name = self.topic.rsplit("/", 1)
        return (self.topic, *(f"{ns or '/camera'}_{k + 1}/{name}" for k in range(1, self.cameras)))

    @property
    def msgtype(self) -> str:
        return COMPRESSED_IMAGE if self.compressed else IMAGE


def is_bag(path: Path) -> bool:
    """What `force` may replace: a rosbag2 folder."""
    return path.is_dir() and (path / "metadata.yaml").is_file()


@dataclass(frozen=True)
class WrittenBag:
    path: Path
    topic: str
    msgtype: str
    storage: str
    frames: int
    first_stamp_ns: int
    last_stamp_ns: int
    width: int
    height: int
    topics: tuple[str, ...] = ()  # every camera topic (options.cameras > 1), the first being `topic`


def write_image_bag(
    sources: Sequence[str | Path],
    out: str | Path,
    options: ImageBagOptions | None = None,
    progress: Callable[[int], None] | None = None,
    force: bool = False,
) -> WrittenBag:
    """Write frames from `sources` (one video or still images) to a new rosbag2 folder `out`.

    Frame i is stamped `start + i / rate` (header stamp and bag receive time alike). Raises BagError when `out`
    exists (unless `force` and it is a bag, which is then replaced) or the bag cannot be written, ImageError
    when the footage does not decode.
    """
    opts = options or ImageBagOptions()
    out = Path(out)
    if not out.parent.is_dir():
        raise BagError(f"{out}: parent folder {out.parent} does not exist")
    store = build_typestore()
    start = opts.start_ns if opts.start_ns is not None else time.time_ns()
    period_ns = round(1e9 / opts.rate_hz)
    frames, width, height = 0, 0, 0
    try:
        with staged_output(out, force=force, replaceable=is_bag, kind=BAG_FOLDER, error=BagError) as staged:
            writer = Writer(staged, version=BAG_VERSION, storage_plugin=STORAGE_FORMATS[opts.storage])
            writer.open()
            try:
                conns = [writer.add_connection(topic, opts.msgtype, typestore=store,
                                               offered_qos_profiles=[CAMERA_QOS]) for topic in opts.topics]
                for frame in read_frames(sources, opts.max_frames):
                    for k, conn in enumerate(conns):
                        stamp = start + frames * period_ns + k * period_ns // opts.cameras
                        image = np.ascontiguousarray(frame[:, ::-1]) if k % 2 else frame
                        frame_id = opts.frame_id if k == 0 else f"{opts.frame_id}_{k + 1}"
                        if opts.compressed:
                            msg = compressed_message(store, image, stamp, frame_id, opts.jpeg_quality)
                        else:
                            msg = image_message(store, image, stamp, frame_id)
                        writer.write(conn, stamp, store.serialize_cdr(msg, opts.msgtype))
                    height, width = frame.shape[:2]
                    frames += 1
                    if progress is not None:
                        progress(frames)
            finally:
                writer.close()
    except WriterError as err:
        raise BagError(f"{out}: cannot write bag: {err}") from err
    last = start + (frames - 1) * period_ns
    return WrittenBag(out, opts.topic, opts.msgtype, opts.storage, frames, start, last, width, height, opts.topics)
