"""What a benchmark runs: a model (the bundled YOLOv3-tiny at a size, an ONNX file, a prepared model folder or an
NNEF model) resolved to its NNEF network, its ONNX reference and one input frame."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ocl_infer.errors import ModelError, SetupError

if TYPE_CHECKING:
    from ocl_infer.detection.description import ModelDescription

DEFAULT = "yolov3-tiny"  # --model value: the model `make setup` prepares, at each --sizes


@dataclass(frozen=True)
class BenchModel:
    """One model to time. `nnef` None: our engine cannot run it (`nnef_error` says why); `onnx` None: no
    reference. `description` is the model.json of a prepared folder (real frames go through its pre-processing)."""

    label: str
    nnef: Path | None
    onnx: Path | None
    inputs: dict[str, tuple[int, ...]]
    description: ModelDescription | None = None
    nnef_error: str | None = None

    @property
    def size(self) -> int:
        """The network input's height, the report's size column."""
        shape = next(iter(self.inputs.values()))
        return int(shape[2]) if len(shape) == 4 else int(shape[-1])


def default_model(size: int) -> BenchModel:
    """The prepared YOLOv3-tiny folder for this input size; prepares it (PyPI sdist) when missing."""
    from ocl_infer import paths

    folder = paths.default_model_dir() if size == 416 else paths.models_dir() / f"{paths.DEFAULT_MODEL_NAME}-{size}"
    if not (folder / "model.json").is_file():
        from ocl_infer.detection.prepare import prepare_default_model

        print(f"bench: preparing {folder.name} (ocl-infer prepare-model --size {size})", flush=True)
        prepare_default_model(folder, size, paths.DEFAULT_MODEL_NAME, paths.downloads_dir())
    return prepared_model(folder)


def prepared_model(folder: Path) -> BenchModel:
    from ocl_infer.detection.description import load_description

    desc = load_description(folder)
    onnx = desc.onnx_path if desc.onnx_path.is_file() else None
    nnef = desc.nnef_path if desc.nnef_path.exists() else None
    return BenchModel(desc.name, nnef, onnx, {desc.input.name: desc.input.shape}, desc,
                      None if nnef else f"{desc.nnef_path} is missing")


def resolve_model(path: Path, work: Path, input_shapes: dict[str, tuple[int, ...]] | None = None) -> BenchModel:
    """An ONNX file (converted into `work`; `input_shapes` fixes dynamic input dims), a prepared folder
    (model.json), a folder with model.nnef [+ model.onnx] (bench/modern_models.py writes those) or an NNEF model.
    Errors name the path."""
    from ocl_infer.engine.graph.convert import convert_model, is_nnef_model

    path = Path(path)
    if not path.exists():
        raise ModelError(f"--model {path}: no such file or folder")
    if path.is_file() and path.suffix.lower() == ".onnx":
        nnef: Path | None = None
        error = None
        try:
            nnef = convert_model(path, work / f"{path.stem}-{len(list(work.iterdir()))}.nnef", input_shapes)
        except ModelError as err:  # the references still run; our row says why it cannot
            error = f"conversion failed: {err}"
        inputs = {**onnx_inputs(path, set(input_shapes or ())), **(input_shapes or {})}
        return BenchModel(_label(path), nnef, path, inputs, nnef_error=error)
    if (path / "model.json").is_file():
        return prepared_model(path)
    if (path / "model.nnef").exists():
        onnx = path / "model.onnx" if (path / "model.onnx").is_file() else None
        return BenchModel(path.name, path / "model.nnef", onnx, nnef_inputs(path / "model.nnef"))
    if is_nnef_model(path):
        return BenchModel(_label(path), path, None, nnef_inputs(path))
    raise ModelError(f"--model {path}: not an ONNX file, a prepared model folder (model.json), a folder with "
                     "model.nnef, or an NNEF model")


def _label(path: Path) -> str:
    """A model's short name: its folder's name for model.onnx / model.nnef, else the file's stem."""
    return path.parent.name if path.stem == "model" else path.name.split(".")[0]


def onnx_inputs(path: Path, fixed: set[str] | frozenset[str] = frozenset()) -> dict[str, tuple[int, ...]]:
    """Input name -> static shape of an ONNX graph (initializers and the `fixed` inputs excluded). Dynamic dims:
    ModelError."""
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    weights = {i.name for i in model.graph.initializer}
    out: dict[str, tuple[int, ...]] = {}
    for inp in model.graph.input:
        if inp.name in weights or inp.name in fixed:
            continue
        dims = inp.type.tensor_type.shape.dim
        if any(not d.HasField("dim_value") or d.dim_value <= 0 for d in dims):
            raise ModelError(f"{path}: input {inp.name!r} has dynamic dimensions; export it with a fixed size")
        out[inp.name] = tuple(int(d.dim_value) for d in dims)
    return out


def nnef_inputs(path: Path) -> dict[str, tuple[int, ...]]:
    from ocl_infer.engine.graph.loader import load_graph

    graph = load_graph(path)
    return {name: tuple(graph.tensors[name].shape) for name in graph.inputs}


def sample_frame() -> np.ndarray:
    """A real street frame (vtest.avi, 768x576) or, failing that, dog.jpg; BGR uint8."""
    import cv2

    from ocl_infer import paths

    video = paths.data_dir() / "vtest.avi"
    if video.is_file():
        cap = cv2.VideoCapture(str(video))
        ok, frame = cap.read()
        cap.release()
        if ok:
            return frame
    image = cv2.imread(str(paths.data_dir() / "dog.jpg"))
    if image is None:
        raise SetupError(f"no sample frame in {paths.data_dir()}: run `make setup`")
    return image


def model_feed(model: BenchModel, seed: int = 0) -> dict[str, np.ndarray]:
    """The inputs for one frame: a real frame through the model's own pre-processing when it has a model.json,
    else uniform [0, 1) (what an image network sees after /255)."""
    if model.description is not None:
        from ocl_infer.detection.preprocess import preprocess

        x, _ = preprocess(sample_frame(), model.description.input)
        return {model.description.input.name: np.ascontiguousarray(x)}
    rng = np.random.default_rng(seed)
    return {name: rng.random(shape, dtype=np.float32) for name, shape in model.inputs.items()}
