"""One rosbags type store that knows ROS 2 Kilted's messages plus ours (vision_msgs, ocl_infer_msgs).

The extra packages are read from their `.msg` text: the source tree's `msgs/<pkg>/msg/` first, else the copy
an install put under `<prefix>/share/<pkg>/msg/`. Registering them lets the replay record and read back
`detections` and `timing` like any standard type.
"""

import functools
import sys
from pathlib import Path

from rosbags.typesys import Stores, TypesysError, get_types_from_msg, get_typestore
from rosbags.typesys.store import Typestore

from ocl_infer.errors import BagError
from ocl_infer.paths import repo_root

IMAGE = "sensor_msgs/msg/Image"
COMPRESSED_IMAGE = "sensor_msgs/msg/CompressedImage"
CAMERA_TYPES = (IMAGE, COMPRESSED_IMAGE)
EXTRA_PACKAGES = ("vision_msgs", "ocl_infer_msgs")


def find_msg_dir(package: str) -> Path | None:
    """Where `package`'s .msg files are: the source checkout, else an installed share folder."""
    candidates = []
    root = repo_root()
    if root is not None:
        candidates.append(root / "msgs" / package / "msg")
    candidates.append(Path(sys.prefix) / "share" / package / "msg")
    for path in candidates:
        if path.is_dir() and any(path.glob("*.msg")):
            return path
    return None


def _msg_types(package: str, folder: Path) -> dict:
    types: dict = {}
    for path in sorted(folder.glob("*.msg")):
        name = f"{package}/msg/{path.stem}"
        try:
            types.update(get_types_from_msg(path.read_text(), name))
        except (TypesysError, ValueError) as err:
            raise BagError(f"cannot parse message definition {path}: {err}") from err
    return types


@functools.lru_cache(maxsize=1)
def build_typestore() -> Typestore:
    """Kilted's standard types plus every extra package found (a missing one is skipped, not an error)."""
    store = get_typestore(Stores.ROS2_KILTED)
    types: dict = {}
    for package in EXTRA_PACKAGES:
        folder = find_msg_dir(package)
        if folder is not None:
            types.update(_msg_types(package, folder))
    if types:
        try:
            store.register(types)
        except TypesysError as err:
            raise BagError(f"cannot register message types {sorted(types)}: {err}") from err
    return store


def require_type(store: Typestore, msgtype: str) -> None:
    """Raise a BagError naming the package to build when `msgtype` is unknown."""
    if msgtype not in store.types:
        package = msgtype.split("/", 1)[0]
        raise BagError(
            f"message type {msgtype} is unknown: no .msg files for {package} "
            f"(looked in msgs/{package}/msg and {Path(sys.prefix) / 'share' / package / 'msg'})"
        )
