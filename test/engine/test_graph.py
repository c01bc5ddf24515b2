"""Loading NNEF: folders, archives, and every kind of bad model -> one clear ModelError naming file and fault."""

import io
import shutil
import tarfile
from pathlib import Path

import numpy as np
import pytest

from ocl_infer.engine.graph import load_graph, save_graph
from ocl_infer.engine.graph.archive import extract_archive
from ocl_infer.engine.graph.dat import HEADER_BYTES, read_dat, write_dat
from ocl_infer.errors import ModelError

GRAPH = """version 1.0;

graph net( input ) -> ( output )
{
    input = external<scalar>(shape = [1, 2, 5, 5]);
    filter = variable<scalar>(shape = [3, 2, 3, 3], label = 'filter');
    bias = variable<scalar>(shape = [1, 3], label = 'bias');
    conv1 = conv(input, filter, bias, padding = [(1, 1), (1, 1)]);
    output = relu(conv1);
}
"""


@pytest.fixture
def model(tmp_path: Path) -> Path:
    folder = tmp_path / "net.nnef"
    folder.mkdir()
    (folder / "graph.nnef").write_text(GRAPH)
    rng = np.random.default_rng(0)
    write_dat(folder / "filter.dat", rng.standard_normal((3, 2, 3, 3)).astype(np.float32))
    write_dat(folder / "bias.dat", rng.standard_normal((1, 3)).astype(np.float32))
    return folder


def test_load_folder_builds_immutable_graph(model):
    g = load_graph(model)
    assert g.inputs == ("input",) and g.outputs == ("output",)
    assert [op.kind for op in g.ops] == ["conv", "relu"]
    assert g.tensors["filter"].data.shape == (3, 2, 3, 3)
    assert g.tensors["conv1"].shape == (1, 3, 5, 5)
    with pytest.raises((AttributeError, TypeError)):
        g.ops[0].attrs["groups"] = 2  # type: ignore[index]


def test_missing_dat(model):
    (model / "bias.dat").unlink()
    with pytest.raises(ModelError, match=r"bias\.dat: missing tensor file for variable 'bias'"):
        load_graph(model)


def test_truncated_dat(model):
    raw = (model / "filter.dat").read_bytes()
    (model / "filter.dat").write_bytes(raw[:-7])
    with pytest.raises(ModelError, match=r"filter\.dat: file is \d+ bytes, expected \d+ \(truncated\)"):
        load_graph(model)


def test_truncated_header(model):
    (model / "filter.dat").write_bytes(b"\x4e\xef\x01\x00" + b"\0" * 20)
    with pytest.raises(ModelError, match=r"filter\.dat: truncated"):
        load_graph(model)


def test_wrong_shape_in_dat(model):
    write_dat(model / "bias.dat", np.zeros((1, 4), np.float32))
    with pytest.raises(ModelError, match=r"bias\.dat: shape \[1, 4\] does not match \[1, 3\]"):
        load_graph(model)


def test_wrong_dtype_in_dat(model):
    raw = bytearray((model / "bias.dat").read_bytes())
    raw[44:48] = (8).to_bytes(4, "little")  # claims 8-bit float: no such type
    (model / "bias.dat").write_bytes(bytes(raw))
    with pytest.raises(ModelError, match=r"bias\.dat: unsupported item type \(code 0, 8 bits\)"):
        load_graph(model)


def test_bad_magic(model):
    raw = bytearray((model / "bias.dat").read_bytes())
    raw[0] = 0
    (model / "bias.dat").write_bytes(bytes(raw))
    with pytest.raises(ModelError, match=r"bias\.dat: not an NNEF tensor file"):
        load_graph(model)


def test_nan_weights_rejected(model):
    write_dat(model / "bias.dat", np.array([[0, np.nan, 1]], np.float32))
    with pytest.raises(ModelError, match="NaN"):
        load_graph(model)


def test_unknown_op_names_op_tensor_and_supported_list(model):
    header = ("version 1.0;\nextension KHR_enable_fragment_definitions;\n"
              "fragment deform_conv( x: tensor<scalar> ) -> ( y: tensor<scalar> );")  # a fragment we cannot run
    (model / "graph.nnef").write_text(GRAPH.replace("output = relu(conv1);", "output = deform_conv(conv1);")
                                      .replace("version 1.0;", header))
    with pytest.raises(ModelError) as info:
        load_graph(model)
    msg = str(info.value)
    assert "graph.nnef" in msg and "'deform_conv'" in msg and "'output'" in msg and "supported ops:" in msg
    assert "conv" in msg and "relu" in msg


def test_syntax_error_names_file(model):
    (model / "graph.nnef").write_text(GRAPH.replace("output = relu(conv1);", "output = relu(conv1"))
    with pytest.raises(ModelError, match=r"graph\.nnef"):
        load_graph(model)


def test_missing_model_and_folder_without_graph(tmp_path):
    with pytest.raises(ModelError, match="model not found"):
        load_graph(tmp_path / "nope.nnef")
    with pytest.raises(ModelError, match=r"has no graph\.nnef"):
        load_graph(tmp_path)


def test_variable_label_outside_folder(model):
    (model / "graph.nnef").write_text(GRAPH.replace("label = 'bias'", "label = '../bias'"))
    with pytest.raises(ModelError, match="outside the model folder"):
        load_graph(model)


def test_dat_roundtrip_keeps_rank0(tmp_path):
    write_dat(tmp_path / "s.dat", np.array(2.5, np.float32))
    assert (tmp_path / "s.dat").stat().st_size == HEADER_BYTES + 4
    assert read_dat(tmp_path / "s.dat", (), "s").shape == ()


def _tgz(path: Path, members: list[tuple[tarfile.TarInfo, bytes | None]]) -> Path:
    with tarfile.open(path, "w:gz") as tar:
        for info, data in members:
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    return path


@pytest.fixture
def cache(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("OCL_INFER_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


def test_archive_extracts_into_cache_and_loads(model, tmp_path, cache):
    archive = tmp_path / "net.nnef.tgz"
    with tarfile.open(archive, "w:gz") as tar:
        for f in sorted(model.iterdir()):
            tar.add(f, arcname=f.name)
    g = load_graph(archive)
    assert [op.kind for op in g.ops] == ["conv", "relu"]
    assert Path(g.source).is_relative_to(cache)
    assert load_graph(archive).source == g.source  # extracted once, reused


def test_archive_extraction_removes_orphans_of_killed_extractions(model, tmp_path, cache):
    """A `.extract-*` folder older than an hour is what a process killed mid-extraction left: the next
    extraction removes it; a young one (maybe another process at work) stays."""
    import os
    import time

    root = cache / "nnef"
    old, young = root / ".extract-old", root / ".extract-young"
    for d in (old, young):
        d.mkdir(parents=True)
        (d / "graph.nnef").write_text("partial")
    hours_ago = time.time() - 2 * 3600
    os.utime(old, (hours_ago, hours_ago))
    archive = tmp_path / "net.nnef.tgz"
    with tarfile.open(archive, "w:gz") as tar:
        for f in sorted(model.iterdir()):
            tar.add(f, arcname=f.name)
    load_graph(archive)
    assert not old.exists() and young.is_dir()


@pytest.mark.parametrize("name,kind", [("../evil.dat", "file"), ("/abs/evil.dat", "file"), ("a/../../evil", "file"),
                                       ("link.dat", "sym"), ("hard.dat", "lnk"), ("dev", "chr")])
def test_archive_rejects_unsafe_members(tmp_path, cache, name, kind):
    info = tarfile.TarInfo(name)
    data: bytes | None = b"x" * 10
    if kind == "file":
        info.size = 10
    else:
        info.type = {"sym": tarfile.SYMTYPE, "lnk": tarfile.LNKTYPE, "chr": tarfile.CHRTYPE}[kind]
        info.linkname = "/etc/passwd"
        data = None
    graph = tarfile.TarInfo("graph.nnef")
    graph.size = len(GRAPH)
    archive = _tgz(tmp_path / "bad.tgz", [(graph, GRAPH.encode()), (info, data)])
    with pytest.raises(ModelError, match=r"bad\.tgz: archive member .* (outside the archive root|link|not a regular)"):
        load_graph(archive)
    assert not (tmp_path / "evil.dat").exists() and not Path("/abs/evil.dat").exists()
    leftovers = [p for p in (cache / "nnef").rglob("*") if p.is_file()] if (cache / "nnef").exists() else []
    assert leftovers == []


def test_archive_size_cap(tmp_path, cache):
    big = tarfile.TarInfo("graph.nnef")
    big.size = 5000
    archive = _tgz(tmp_path / "big.tgz", [(big, b" " * 5000)])
    with pytest.raises(ModelError, match="exceed"):
        extract_archive(archive, max_total_bytes=4096)


def test_not_an_archive(tmp_path, cache):
    bad = tmp_path / "junk.tgz"
    bad.write_bytes(b"not a tar")
    with pytest.raises(ModelError, match=r"junk\.tgz: not a readable tar archive"):
        load_graph(bad)


def test_save_graph_roundtrip(model, tmp_path):
    g = load_graph(model)
    out = save_graph(g, tmp_path / "saved.nnef")
    g2 = load_graph(out)
    assert [op.kind for op in g2.ops] == [op.kind for op in g.ops]
    np.testing.assert_array_equal(g2.tensors["filter"].data, g.tensors["filter"].data)
    with pytest.raises(ModelError, match="not overwriting"):
        save_graph(g, out)
    shutil.rmtree(out)


def test_save_keeps_list_arguments_literals_and_list_outputs(tmp_path):
    folder = tmp_path / "lists"
    folder.mkdir()
    (folder / "graph.nnef").write_text("""version 1.0;
graph g( a, b ) -> ( s, u0, u1, c )
{
    a = external<scalar>(shape = [2, 2]);
    b = external<scalar>(shape = [2, 2]);
    s = stack([a, b], axis = 0);
    [u0, u1] = unstack(a, axis = 1);
    c = clamp(b, -0.5, 0.5);
}
""")
    g = load_graph(folder)
    g2 = load_graph(save_graph(g, tmp_path / "saved"))
    assert [(op.kind, op.inputs, op.outputs) for op in g2.ops] == [(op.kind, op.inputs, op.outputs) for op in g.ops]
    assert float(g2.tensors["c:a"].data) == -0.5 and float(g2.tensors["c:b"].data) == 0.5
