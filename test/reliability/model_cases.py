"""Mutated NNEF models for the model fuzz test: folders and archives built from two real models.

Bases: a small CNN made with onnx.helper and converted by nnef-tools (cheap to load, so most cases use it) and
the prepared YOLOv3-tiny folder (its 34 MB of weights are hard-linked, never copied, per case). Every case is
written by `write_case(rng, kind, base, out_dir, outside_dir)` from a seeded generator, so a failure names a
reproducible case. `expect` says whether the case must fail ("error") or may go either way ("any").
"""

from __future__ import annotations

import gzip
import io
import os
import re
import shutil
import tarfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

HEADER = 128
# Payloads that would leave a canary file behind if anything in a model file were executed or unpickled.
CANARY = "OCL_INFER_FUZZ_CANARY"


@dataclass(frozen=True)
class Base:
    """A real NNEF folder; `dats` are its tensor files by name."""

    folder: Path
    graph_text: str
    dats: tuple[str, ...]


@dataclass(frozen=True)
class Case:
    name: str
    kind: str
    path: Path
    expect: str  # "error": must raise ModelError; "any": ModelError or a correct load


def small_cnn(out: Path) -> tuple[Path, dict[str, np.ndarray], Path]:
    """conv3x3+bias -> relu -> max_pool 2x2 -> conv1x1, 1x3x8x8 -> 1x2x4x4. Returns (nnef folder, weights, onnx)."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    from ocl_infer.engine.graph.convert import convert_model

    rng = np.random.default_rng(0)
    weights = {"w1": (rng.standard_normal((4, 3, 3, 3)) * 0.3).astype(np.float32),
               "b1": rng.standard_normal(4).astype(np.float32),
               "w2": (rng.standard_normal((2, 4, 1, 1)) * 0.3).astype(np.float32)}
    nodes = [helper.make_node("Conv", ["x", "w1", "b1"], ["c1"], pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["c1"], ["r1"]),
             helper.make_node("MaxPool", ["r1"], ["p1"], kernel_shape=[2, 2], strides=[2, 2]),
             helper.make_node("Conv", ["p1", "w2"], ["y"])]
    graph = helper.make_graph(
        nodes, "small", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 2, 4, 4])],
        [numpy_helper.from_array(v, k) for k, v in weights.items()])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    out.mkdir(parents=True, exist_ok=True)
    onnx_path = out / "small.onnx"
    onnx.save(model, onnx_path)
    folder = convert_model(onnx_path, out / "small.nnef")
    return folder, weights, onnx_path


def load_base(folder: Path) -> Base:
    return Base(folder, (folder / "graph.nnef").read_text(),
                tuple(sorted(p.name for p in folder.iterdir() if p.suffix == ".dat")))


def read_dat_independently(path: Path) -> np.ndarray:
    """An NNEF tensor file read with nothing but numpy (the reference for loaded weights)."""
    raw = path.read_bytes()
    words = np.frombuffer(raw[4:HEADER], dtype="<u4")
    rank, bits, code = int(words[1]), int(words[10]), int(words[11])
    if code == 1 and int(words[12]):
        code = 4  # older writers flag signed ints this way
    dtype = {(0, 16): "<f2", (0, 32): "<f4", (0, 64): "<f8", (1, 8): "<u1", (1, 16): "<u2", (1, 32): "<u4",
             (4, 8): "<i1", (4, 16): "<i2", (4, 32): "<i4"}[(code, bits)]
    shape = tuple(int(d) for d in words[2:2 + rank])
    return np.frombuffer(raw[HEADER:], dtype=dtype).reshape(shape).astype(np.float64)


# ------------------------------------------------------------------------------------------------ helpers
def _clone(base: Base, out: Path) -> None:
    """A case folder whose files are hard links to the base (mutations replace a file, never edit a link)."""
    out.mkdir(parents=True)
    for p in base.folder.iterdir():
        if p.is_file():
            os.link(p, out / p.name)


def _replace(path: Path, data: bytes) -> None:
    path.unlink(missing_ok=True)
    path.write_bytes(data)


def _dat_header(shape: list[int], nbytes: int, bits: int = 32, code: int = 0) -> bytes:
    words = np.zeros(31, dtype="<u4")
    words[0], words[1] = nbytes, len(shape)
    words[2:2 + len(shape)] = shape
    words[10], words[11] = bits, code
    return bytes((0x4E, 0xEF, 1, 0)) + words.tobytes()


def _flip_bits(data: bytes, rng: np.random.Generator, lo: int, hi: int, n: int) -> bytes:
    buf = bytearray(data)
    for _ in range(n):
        i = int(rng.integers(lo, max(lo + 1, hi)))
        if i < len(buf):
            buf[i] ^= 1 << int(rng.integers(0, 8))
    return bytes(buf)


def _ops_lines(text: str) -> list[int]:
    lines = text.splitlines()
    return [i for i, ln in enumerate(lines) if "=" in ln and "(" in ln and "external" not in ln
            and "variable" not in ln]


def _last_op(text: str) -> tuple[str, str]:
    """(name, line) of the graph's last op line, where new lines are inserted before."""
    lines = text.splitlines()
    i = _ops_lines(text)[-1]
    return lines[i].split("=")[0].strip(), lines[i]


NUMBERS = ["0", "-1", "-7", "2147483647", "2147483648", "99999999999", "1000000", "65536", "1e30", "-0.0"]
DTYPES = ["integer", "logical", "tensor", "real", "scalar"]
OPS = ["sigmoid", "tanh", "deconv", "frobnicate", "max_pool", "matmul", "reshape", "split", "softmax", "gt", "box"]


# ------------------------------------------------------------------------------------------------ kinds
def dat_truncate(rng: np.random.Generator, base: Base, out: Path, _: Path) -> str:
    _clone(base, out)
    name = str(rng.choice(base.dats))
    data = (base.folder / name).read_bytes()
    _replace(out / name, data[: int(rng.integers(0, len(data)))])
    return "error"


def dat_header_flip(rng: np.random.Generator, base: Base, out: Path, _: Path) -> str:
    _clone(base, out)
    name = str(rng.choice(base.dats))
    data = (base.folder / name).read_bytes()
    flipped = _flip_bits(data, rng, 0, HEADER, int(rng.integers(1, 4)))
    _replace(out / name, flipped)
    return "any"  # a flip in an unused header word is harmless


def dat_data_flip(rng: np.random.Generator, base: Base, out: Path, _: Path) -> str:
    _clone(base, out)
    name = str(rng.choice(base.dats))
    data = (base.folder / name).read_bytes()
    _replace(out / name, _flip_bits(data, rng, HEADER, len(data), int(rng.integers(1, 8))))
    return "any"  # may stay finite (loads, different weights) or become NaN/inf (refused)


def dat_trailing(rng: np.random.Generator, base: Base, out: Path, _: Path) -> str:
    _clone(base, out)
    name = str(rng.choice(base.dats))
    data = (base.folder / name).read_bytes()
    _replace(out / name, data + rng.bytes(int(rng.integers(1, 4096))))
    return "error"


def dat_dtype(rng: np.random.Generator, base: Base, out: Path, _: Path) -> str:
    """Rewrite a tensor in another item type: float16/float64 convert exactly (must load); others may not."""
    _clone(base, out)
    name = str(rng.choice(base.dats))
    arr = read_dat_independently(base.folder / name)
    code, bits, np_type = [(0, 16, "<f2"), (0, 64, "<f8"), (4, 8, "<i1"), (1, 8, "<u1"), (4, 32, "<i4"),
                           (2, 8, "<u1"), (5, 8, "<u1"), (0, 8, "<u1"), (9, 32, "<f4")][int(rng.integers(0, 9))]
    data = (arr.astype(np.float16) if code == 0 and bits == 16 else arr).astype(np_type).tobytes()
    _replace(out / name, _dat_header(list(arr.shape), len(data), bits, code) + data)
    return "any"


def dat_shape(rng: np.random.Generator, base: Base, out: Path, _: Path) -> str:
    """Wrong rank, wrong dims, dims whose product wraps 64 bits, sizes that ask for terabytes."""
    _clone(base, out)
    name = str(rng.choice(base.dats))
    arr = read_dat_independently(base.folder / name)
    shape = list(arr.shape)
    pick = int(rng.integers(0, 6))
    if pick == 0:
        shape = [*shape, 1] if len(shape) < 8 else shape[:-1]
    elif pick == 1:
        shape[int(rng.integers(0, len(shape)))] += int(rng.integers(1, 5))
    elif pick == 2:
        shape = [65536, 65536, 65536, 65536]
    elif pick == 3:
        shape = [1000000, 1000000]
    elif pick == 4:
        shape = [int(x) for x in rng.integers(0, 2**32, size=int(rng.integers(1, 9)))]
    else:
        shape = [*shape] + [0] * (9 - len(shape))  # rank 9
    nbytes = int(rng.choice([arr.size * 4, 0, 2**32 - 1]))
    body = arr.astype("<f4").tobytes()
    _replace(out / name, _dat_header(shape[:8], nbytes) + body if pick != 5 else
             bytes((0x4E, 0xEF, 1, 0)) + np.array([nbytes, 9, *shape[:8]], "<u4").tobytes().ljust(124, b"\0") + body)
    return "error"


def dat_garbage(rng: np.random.Generator, base: Base, out: Path, outside: Path) -> str:
    _clone(base, out)
    name = str(rng.choice(base.dats))
    (out / name).unlink()
    pick = int(rng.integers(0, 5))
    if pick == 0:
        (out / name).write_bytes(rng.bytes(int(rng.integers(0, 2048))))
    elif pick == 1:
        pass  # missing
    elif pick == 2:
        (out / name).mkdir()
    elif pick == 3:
        (out / name).symlink_to(outside / "secret.dat")  # a link out of the model folder
    else:
        os.mkfifo(out / name)  # reading it would block forever
    return "error"


def graph_truncate(rng: np.random.Generator, base: Base, out: Path, _: Path) -> str:
    _clone(base, out)
    cut = int(rng.integers(0, len(base.graph_text) - 2))
    _replace(out / "graph.nnef", base.graph_text[:cut].encode())
    return "error"


def graph_byte_flips(rng: np.random.Generator, base: Base, out: Path, _: Path) -> str:
    _clone(base, out)
    raw = base.graph_text.encode()
    _replace(out / "graph.nnef", _flip_bits(raw, rng, 0, len(raw), int(rng.integers(1, 6))))
    return "any"


def graph_lines(rng: np.random.Generator, base: Base, out: Path, _: Path) -> str:
    """Delete, duplicate or swap statement lines (use before definition, redefinition)."""
    _clone(base, out)
    lines = base.graph_text.splitlines()
    body = [i for i, ln in enumerate(lines) if ln.strip().endswith(";") and "=" in ln]
    i, j = (int(x) for x in rng.choice(body, size=2, replace=False))
    pick = int(rng.integers(0, 3))
    if pick == 0:
        del lines[i]
    elif pick == 1:
        lines.insert(j, lines[i])
    else:
        lines[i], lines[j] = lines[j], lines[i]
    _replace(out / "graph.nnef", ("\n".join(lines) + "\n").encode())
    return "any"


def graph_numbers(rng: np.random.Generator, base: Base, out: Path, _: Path) -> str:
    """One integer in a shape or attribute replaced by 0, negatives, int32 edge values or huge ones."""
    _clone(base, out)
    text = base.graph_text
    spots = [m for m in re.finditer(r"(?<![\w.'])\d+(?![\w.'])", text)
             if "version" not in text[max(0, m.start() - 9):m.start()]]
    m = spots[int(rng.integers(0, len(spots)))]
    new = str(rng.choice(NUMBERS))
    _replace(out / "graph.nnef", (text[:m.start()] + new + text[m.end():]).encode())
    return "any"


def graph_ops(rng: np.random.Generator, base: Base, out: Path, _: Path) -> str:
    """An op renamed to another supported op, an unsupported standard op or an unknown one."""
    _clone(base, out)
    lines = base.graph_text.splitlines()
    i = int(rng.choice(_ops_lines(base.graph_text)))
    lines[i] = re.sub(r"=\s*(\w+)\(", f"= {rng.choice(OPS)}(", lines[i], count=1)
    _replace(out / "graph.nnef", ("\n".join(lines) + "\n").encode())
    return "any"


def graph_dtypes(rng: np.random.Generator, base: Base, out: Path, _: Path) -> str:
    _clone(base, out)
    spots = [m.start() for m in re.finditer(r"<scalar>", base.graph_text)]
    at = int(rng.choice(spots))
    text = base.graph_text[:at] + f"<{rng.choice(DTYPES[:-1])}>" + base.graph_text[at + len("<scalar>"):]
    _replace(out / "graph.nnef", text.encode())
    return "error"


def graph_cycle(rng: np.random.Generator, base: Base, out: Path, _: Path) -> str:
    """An op reads its own output or a later tensor (a cycle in a text that can only define forwards)."""
    _clone(base, out)
    lines = base.graph_text.splitlines()
    ops = _ops_lines(base.graph_text)
    i = int(rng.choice(ops[:-1]))
    later = lines[int(rng.choice([k for k in ops if k >= i]))].split("=")[0].strip()
    before = lines[i]
    lines[i] = re.sub(r"\((\w+)", f"({later}", lines[i], count=1)
    _replace(out / "graph.nnef", ("\n".join(lines) + "\n").encode())
    return "error" if lines[i] != before else "any"  # an op whose first input is a list is left as it was


def graph_parser_crash(rng: np.random.Generator, base: Base, out: Path, _: Path) -> str:
    """`name( = op(...)`: a byte flip the 20000-case run found; it segfaults nnef's C++ parser in-process."""
    _clone(base, out)
    lines = base.graph_text.splitlines()
    i = int(rng.choice([k for k, ln in enumerate(lines) if " = " in ln]))
    lines[i] = lines[i].replace(" = ", str(rng.choice(["( = ", "(= ", "(  = "])), 1)
    _replace(out / "graph.nnef", ("\n".join(lines) + "\n").encode())
    return "error"


def graph_nesting(rng: np.random.Generator, base: Base, out: Path, _: Path) -> str:
    """Deeply nested expressions: a few hundred levels parse; past our limit they are refused before the C++
    parser, whose recursion would otherwise overflow its stack (a segfault) at about 100k levels."""
    _clone(base, out)
    _name, line = _last_op(base.graph_text)
    depth = int(rng.choice([300, 2000, 20000, 200000]))
    src = line.split("(")[1].split(",")[0].split(")")[0].strip()
    extra = f"    deep = {'add(' * depth}{src}{', 1.0)' * depth};\n"
    text = base.graph_text.replace(line, extra + line, 1)
    _replace(out / "graph.nnef", text.encode())
    return "error"


def graph_huge_shapes(rng: np.random.Generator, base: Base, out: Path, _: Path) -> str:
    """Shapes that would need terabytes: an input, a constant (allocated by the loader if unchecked) or a pad."""
    _clone(base, out)
    text = base.graph_text
    pick = int(rng.integers(0, 4))
    _name, line = _last_op(text)
    big = [int(rng.integers(2**16, 2**20)), int(rng.integers(2**16, 2**20)), int(rng.integers(1, 64))]
    if pick == 0:
        text = re.sub(r"external<scalar>\(shape = \[([^\]]*)\]\)",
                      lambda m: f"external<scalar>(shape = [1, 3, {big[0]}, {big[1]}])", text, count=1)
        expect = "any"  # a wrong input shape may be refused by a later op instead
    elif pick == 1:
        text = text.replace(line, f"    big_k = constant<scalar>(shape = {big}, value = [0.5]);\n" + line, 1)
        expect = "error"
    elif pick == 2:
        text = text.replace(line, "    big_k = constant<scalar>(shape = [2, 2], value = [1.0, 2.0, 3.0]);\n" + line, 1)
        expect = "error"
    else:
        text = re.sub(r"padding = \[\(\d+, \d+\), \(\d+, \d+\)\]",
                      f"padding = [({big[0]}, {big[0]}), ({big[1]}, {big[1]})]", text, count=1)
        expect = "error"
    _replace(out / "graph.nnef", text.encode())
    return expect


def graph_labels(rng: np.random.Generator, base: Base, out: Path, outside: Path) -> str:
    """Variable labels that point outside the folder or carry code; none may be read or run."""
    _clone(base, out)
    spots = list(re.finditer(r"label = '([^']*)'", base.graph_text))
    m = spots[int(rng.integers(0, len(spots)))]
    label = str(rng.choice([
        "../../../../etc/passwd", str(outside / "secret"), "/etc/passwd", "../" + out.name + "/x",
        f"__import__('os').system('touch {outside}/{CANARY}')", "a" * 5000, "sub/../../x", "",
        f"$(touch {outside}/{CANARY})"]))
    text = base.graph_text[:m.start()] + f"label = {label!r}" + base.graph_text[m.end():]
    _replace(out / "graph.nnef", text.encode())
    return "error"


def graph_fragments(rng: np.random.Generator, base: Base, out: Path, _: Path) -> str:
    """Custom fragments: recursive, redefining a standard op, or simply unknown to the engine."""
    _clone(base, out)
    body = str(rng.choice([
        "fragment loop( x: tensor<scalar> ) -> ( y: tensor<scalar> ) { y = loop(x); }",
        "fragment relu( x: tensor<scalar> ) -> ( y: tensor<scalar> ) { y = x; }",
        "fragment twice( x: tensor<scalar> ) -> ( y: tensor<scalar> ) { y = add(x, x); }",
        "fragment a( x: tensor<scalar> ) -> ( y: tensor<scalar> ) { y = b(x); }\n"
        "fragment b( x: tensor<scalar> ) -> ( y: tensor<scalar> ) { y = a(x); }"]))
    fname = body.split()[1].split("(")[0]
    ops = _ops_lines(base.graph_text)
    lines = base.graph_text.splitlines()
    i = ops[int(rng.integers(0, len(ops)))]
    lines[i] = re.sub(r"=\s*\w+\(", f"= {fname}(", lines[i], count=1)
    lines[i] = re.sub(r"\(([\w]+),.*\);", r"(\1);", lines[i])
    text = "\n".join(lines).replace("version 1.0;", "version 1.0;\nextension KHR_enable_fragment_definitions;\n"
                                    + body, 1)
    _replace(out / "graph.nnef", text.encode())
    return "error"


def graph_garbage(rng: np.random.Generator, base: Base, out: Path, _: Path) -> str:
    _clone(base, out)
    pick = int(rng.integers(0, 5))
    if pick == 0:
        data = rng.bytes(int(rng.integers(0, 4096)))
    elif pick == 1:
        data = b""
    elif pick == 2:
        data = base.graph_text.encode().replace(b"graph", b"gr\xff\xfeaph", 1)
    elif pick == 3:
        tail = rng.bytes(64)
        _replace(out / "graph.nnef", base.graph_text.encode() + b"\n" + tail)
        return "any" if tail[:1] in (b"\0", b"#") else "error"  # the parser stops at NUL; '#' starts a comment
    else:
        data = b"version 1.0;\ngraph g(x) -> (y) { x = external<scalar>(shape = [1]); y = relu(x) }"
    _replace(out / "graph.nnef", data)
    return "error"


def graph_oversize(rng: np.random.Generator, base: Base, out: Path, _: Path) -> str:
    """A sparse 65 MiB graph.nnef: refused by size before anything reads it."""
    _clone(base, out)
    (out / "graph.nnef").unlink()
    with (out / "graph.nnef").open("wb") as f:
        f.write(base.graph_text.encode())
        f.truncate(65 * 2**20)
    return "error"


def folder_layout(rng: np.random.Generator, base: Base, out: Path, outside: Path) -> str:
    """graph.nnef missing, a folder, a link out, a fifo; a bad graph.quant; code files beside the model."""
    _clone(base, out)
    pick = int(rng.integers(0, 6))
    g = out / "graph.nnef"
    if pick == 0:
        g.unlink()
    elif pick == 1:
        g.unlink()
        g.mkdir()
    elif pick == 2:
        g.unlink()
        g.symlink_to(outside / "secret")
    elif pick == 3:
        g.unlink()
        os.mkfifo(g)
    elif pick == 4:
        (out / "graph.quant").write_bytes(rng.bytes(200))
    else:
        for code_file in ("__init__.py", "graph.py", "sitecustomize.py"):
            (out / code_file).write_text(f"import pathlib; pathlib.Path({str(outside / CANARY)!r}).touch()\n")
        (out / "graph.pkl").write_bytes(b"cos\nsystem\n(S'touch " + str(outside / CANARY).encode() + b"'\ntR.")
        return "any"  # the model itself is intact: it loads, and nothing beside it runs
    return "error" if pick in (0, 1, 2, 3) else "any"


# ------------------------------------------------------------------------------------------------ archives
def _tar_bytes(members: list[tuple[tarfile.TarInfo, bytes | None]]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as t:
        for info, data in members:
            t.addfile(info, io.BytesIO(data) if data is not None else None)
    return buf.getvalue()


def _info(name: str, data: bytes | None = None, kind: bytes = tarfile.REGTYPE, link: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.linkname = kind, link
    info.size = len(data) if data is not None and kind == tarfile.REGTYPE else 0
    return info


def _model_members(base: Base, prefix: str = "") -> list[tuple[tarfile.TarInfo, bytes | None]]:
    out = []
    for p in sorted(base.folder.iterdir()):
        if p.is_file():
            data = p.read_bytes()
            out.append((_info(prefix + p.name, data), data))
    return out


def archive_valid(rng: np.random.Generator, base: Base, out: Path, _: Path) -> str:
    """A good model as .tgz, .tar.gz, .tar or in a subfolder: must load (the `any` check verifies it)."""
    prefix = str(rng.choice(["", "./", "model.nnef/"]))
    raw = _tar_bytes(_model_members(base, prefix))
    suffix = str(rng.choice([".tgz", ".tar.gz", ".tar"]))
    out.parent.mkdir(parents=True, exist_ok=True)
    path = out.with_name(out.name + suffix)
    path.write_bytes(raw if suffix == ".tar" else gzip.compress(raw, compresslevel=1))
    return "any"


def archive_hostile(rng: np.random.Generator, base: Base, out: Path, outside: Path) -> str:
    """Members with `..`, absolute paths, links, devices, a file where a folder must go, size lies, duplicates,
    a header claiming 3 GiB, more members than the limit."""
    members = _model_members(base)
    pick = int(rng.integers(0, 11))
    evil = b"pwned\n"
    if pick == 0:
        members.append((_info("../" * int(rng.integers(1, 6)) + f"{CANARY}_dotdot", evil), evil))
    elif pick == 1:
        members.append((_info(str(outside / f"{CANARY}_abs"), evil), evil))
    elif pick == 2:
        members.insert(0, (_info("variable1.dat", None, tarfile.SYMTYPE, str(outside / "secret.dat")), None))
    elif pick == 3:
        members.append((_info("hard", None, tarfile.LNKTYPE, "graph.nnef"), None))
    elif pick == 4:
        members.append((_info("dev", None, tarfile.CHRTYPE), None))
    elif pick == 5:
        members.append((_info("zz", b"x"), b"x"))
        members.append((_info("zz/a", b"y"), b"y"))
    elif pick == 6:
        info = _info("big.dat", b"abc")
        info.pax_headers = {"size": str(3 * 2**30)}
        members.append((info, b"abc"))
    elif pick == 7:
        members.append((_info("sub/graph.nnef", members[0][1]), members[0][1]))
    elif pick == 8:
        members.append((_info("graph.nnef", None, tarfile.DIRTYPE), None))
    elif pick == 9:
        members = [(_info("graph.nnef", None, tarfile.DIRTYPE), None), *members[1:]]
    else:
        members += [(_info(f"m{i}", b""), b"") for i in range(10_001)]
    if pick == 6:  # write the lying header by hand: tarfile refuses to write a size its data lacks
        raw = b"".join(i.tobuf(tarfile.PAX_FORMAT) + (d or b"").ljust(-(-len(d or b"") // 512) * 512, b"\0")
                       for i, d in members) + b"\0" * 1024
    else:
        raw = _tar_bytes(members)
    out.parent.mkdir(parents=True, exist_ok=True)
    path = out.with_name(out.name + ".tgz")
    path.write_bytes(gzip.compress(raw, compresslevel=1))
    return "error" if pick != 8 else "any"


def archive_corrupt(rng: np.random.Generator, base: Base, out: Path, _: Path) -> str:
    """Truncated or bit-flipped compressed streams, garbage, empty files, a gzip that holds no tar."""
    raw = gzip.compress(_tar_bytes(_model_members(base)), compresslevel=1)
    pick = int(rng.integers(0, 5))
    if pick == 0:  # cut inside the end-of-archive padding, every member is still whole: it may load
        data, expect = raw[: int(rng.integers(0, len(raw)))], "any"
    elif pick == 1:
        data, expect = _flip_bits(raw, rng, 0, len(raw), int(rng.integers(1, 6))), "any"
    elif pick == 2:
        data, expect = rng.bytes(int(rng.integers(0, 4096))), "error"
    elif pick == 3:
        data, expect = b"", "error"
    else:
        data, expect = gzip.compress(b"\0" * int(rng.integers(1, 2**20))), "error"
    out.parent.mkdir(parents=True, exist_ok=True)
    path = out.with_name(out.name + ".tgz")
    path.write_bytes(data)
    return expect


KINDS: dict[str, Callable[[np.random.Generator, Base, Path, Path], str]] = {
    f.__name__: f for f in (
        dat_truncate, dat_header_flip, dat_data_flip, dat_trailing, dat_dtype, dat_shape, dat_garbage,
        graph_truncate, graph_byte_flips, graph_lines, graph_numbers, graph_ops, graph_dtypes, graph_cycle,
        graph_nesting, graph_parser_crash, graph_huge_shapes, graph_labels, graph_fragments, graph_garbage,
        folder_layout,
        archive_valid, archive_hostile, archive_corrupt)
}
ONCE_KINDS = {"graph_oversize": graph_oversize}  # costly or identical each time: one case per base
FOLDER_KINDS_FOR_BIG_BASE = ("dat_truncate", "dat_header_flip", "dat_data_flip", "dat_shape", "graph_numbers",
                             "graph_ops", "graph_lines", "graph_truncate", "graph_cycle", "graph_huge_shapes",
                             "graph_parser_crash")


def make_cases(bases: dict[str, Base], root: Path, outside: Path, n_small: int, n_big: int,
               seed: int) -> list[Case]:
    """n_small cases from bases["small"] over every kind, n_big folder cases from bases["yolo"]."""
    rng = np.random.default_rng(seed)
    cases: list[Case] = []
    kinds = sorted(KINDS)
    plan = [("small", kinds[i % len(kinds)]) for i in range(n_small)]
    plan += [("yolo", FOLDER_KINDS_FOR_BIG_BASE[i % len(FOLDER_KINDS_FOR_BIG_BASE)]) for i in range(n_big)]
    plan += [(b, k) for b in bases for k in ONCE_KINDS]
    for i, (base_name, kind) in enumerate(plan):
        name = f"{i:05d}-{base_name}-{kind}"
        target = root / name
        fn = KINDS.get(kind) or ONCE_KINDS[kind]
        expect = fn(np.random.default_rng(rng.integers(2**63)), bases[base_name], target, outside)
        path = target if target.exists() else next(root.glob(name + ".*"))
        cases.append(Case(name, kind, path, expect))
    return cases


def remove_case(case: Case) -> None:
    if case.path.is_dir() and not case.path.is_symlink():
        shutil.rmtree(case.path, ignore_errors=True)
    else:
        case.path.unlink(missing_ok=True)
