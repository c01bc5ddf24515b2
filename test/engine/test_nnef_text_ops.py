"""Ops and attributes nnef-tools never writes from ONNX (pool borders replicate/reflect, box, lowered compound
fragments, NNEF broadcasting), written as NNEF text and checked against float64 numpy."""

from pathlib import Path

import numpy as np
import pytest

from ocl_infer.engine import Engine
from ocl_infer.engine.graph.dat import write_dat

rng = np.random.default_rng(99)


def run_text(tmp_path: Path, body: str, inputs: dict[str, np.ndarray], outputs: list[str],
             variables: dict[str, np.ndarray] | None = None) -> dict[str, np.ndarray]:
    folder = tmp_path / "m"
    folder.mkdir()
    decl = "\n".join(f"    {n} = external<scalar>(shape = {list(a.shape)});" for n, a in inputs.items())
    for name, arr in (variables or {}).items():
        decl += f"\n    {name} = variable<scalar>(shape = {list(arr.shape)}, label = '{name}');"
        write_dat(folder / f"{name}.dat", arr)
    (folder / "graph.nnef").write_text(
        f"version 1.0;\ngraph g( {', '.join(inputs)} ) -> ( {', '.join(outputs)} )\n{{\n{decl}\n{body}\n}}\n")
    with Engine(folder, poison=True) as engine:
        return engine.run(inputs)


def pool_ref(x: np.ndarray, k: tuple[int, int], s: tuple[int, int], pads: tuple[int, int, int, int],
             mode: str, how: str) -> np.ndarray:
    """Reference pooling over the last two dims with numpy's pad modes (edge = replicate, reflect, symmetric =
    reflect-even)."""
    padded = np.pad(x.astype(np.float64), ((0, 0), (0, 0), (pads[0], pads[2]), (pads[1], pads[3])), mode=mode)
    oh = (padded.shape[2] - k[0]) // s[0] + 1
    ow = (padded.shape[3] - k[1]) // s[1] + 1
    out = np.empty((*x.shape[:2], oh, ow))
    for i in range(oh):
        for j in range(ow):
            win = padded[:, :, i * s[0]: i * s[0] + k[0], j * s[1]: j * s[1] + k[1]]
            out[:, :, i, j] = {"max": win.max(axis=(2, 3)), "sum": win.sum(axis=(2, 3)),
                               "mean": win.mean(axis=(2, 3))}[how]
    return out


@pytest.mark.parametrize("border,np_mode", [("replicate", "edge"), ("reflect", "reflect"),
                                            ("reflect-even", "symmetric")])
def test_pool_borders(tmp_path, border, np_mode):
    x = rng.standard_normal((1, 3, 7, 8)).astype(np.float32)
    pad = "padding = [(0, 0), (0, 0), (1, 2), (2, 1)]"
    body = (f"    m = max_pool(x, size = [1, 1, 3, 3], stride = [1, 1, 2, 1], border = '{border}', {pad});\n"
            f"    a = avg_pool(x, size = [1, 1, 3, 3], stride = [1, 1, 2, 1], border = '{border}', {pad});\n"
            f"    b = box(x, size = [1, 1, 3, 3], stride = [1, 1, 2, 1], border = '{border}', {pad});")
    out = run_text(tmp_path, body, {"x": x}, ["m", "a", "b"])
    for name, how in (("m", "max"), ("a", "mean"), ("b", "sum")):
        want = pool_ref(x, (3, 3), (2, 1), (1, 2, 2, 1), np_mode, how)
        np.testing.assert_allclose(out[name], want, rtol=1e-5, atol=1e-5, err_msg=name)


def test_box_normalize_and_constant_border(tmp_path):
    x = rng.standard_normal((2, 2, 6, 5)).astype(np.float32)
    body = ("    b = box(x, size = [1, 1, 2, 3], border = 'constant', padding = [(0, 0), (0, 0), (1, 0), (1, 1)],"
            " normalize = true);")
    out = run_text(tmp_path, body, {"x": x}, ["b"])
    want = pool_ref(x, (2, 3), (1, 1), (1, 1, 0, 1), "constant", "mean")
    np.testing.assert_allclose(out["b"], want, rtol=1e-5, atol=1e-6)


def test_lowered_fragments_and_nnef_broadcasting(tmp_path):
    x = rng.standard_normal((1, 4, 5, 6)).astype(np.float32)
    scale = rng.standard_normal((1, 4)).astype(np.float32)
    body = ("    l = l2_normalization(x, axes = [1], epsilon = 1e-6);\n"
            "    r = rms_pool(x, size = [1, 1, 2, 2], stride = [1, 1, 2, 2]);\n"
            "    s = mul(x, scale);")
    out = run_text(tmp_path, body, {"x": x}, ["l", "r", "s"], {"scale": scale})
    x64 = x.astype(np.float64)
    norm = np.sqrt(np.maximum((x64 ** 2).sum(axis=1, keepdims=True), 1e-6))
    np.testing.assert_allclose(out["l"], x64 / norm, rtol=1e-5, atol=1e-6)
    # padding [] is NNEF's automatic padding: 5 rows -> 3 windows need one zero row at the bottom
    rms = np.sqrt(pool_ref(x64 ** 2, (2, 2), (2, 2), (0, 0, 1, 0), "constant", "mean"))
    np.testing.assert_allclose(out["r"], rms, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(out["s"], x64 * scale[:, :, None, None], rtol=1e-6)  # [1, 4] aligns left


def test_deconv_auto_padding_and_matmul_transposes(tmp_path):
    x = rng.standard_normal((1, 2, 4, 4)).astype(np.float32)
    f = rng.standard_normal((2, 3, 3, 3)).astype(np.float32)
    a = rng.standard_normal((5, 3)).astype(np.float32)
    b = rng.standard_normal((4, 5)).astype(np.float32)
    body = ("    d = deconv(x, f, 0.0, stride = [2, 2], padding = [(1, 0), (1, 0)]);\n"
            "    m = matmul(a, b, transposeA = true, transposeB = true);")
    out = run_text(tmp_path, body, {"x": x, "a": a, "b": b}, ["d", "m"], {"f": f})
    # scatter-form reference of the transposed convolution, then crop the front padding
    full = np.zeros((1, 3, (4 - 1) * 2 + 3, (4 - 1) * 2 + 3))
    for ic in range(2):
        for i in range(4):
            for j in range(4):
                full[0, :, i * 2: i * 2 + 3, j * 2: j * 2 + 3] += x[0, ic, i, j] * f[ic].astype(np.float64)
    want = full[:, :, 1:, 1:]
    np.testing.assert_allclose(out["d"], want, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(out["m"], a.T.astype(np.float64) @ b.T.astype(np.float64), rtol=1e-5, atol=1e-6)


def test_more_unary_ops(tmp_path):
    x = rng.uniform(-0.9, 0.9, (2, 3, 5)).astype(np.float32)
    ops = {"selu": lambda v: 1.05070102 * np.where(v < 0, 1.67326319 * np.expm1(v), v),
           "gelu": lambda v: v / (1 + np.exp(-1.702 * v)), "silu": lambda v: v / (1 + np.exp(-v)),
           "sin": np.sin, "cos": np.cos, "tan": np.tan, "asin": np.arcsin, "acos": np.arccos, "atan": np.arctan,
           "sinh": np.sinh, "cosh": np.cosh, "asinh": np.arcsinh, "atanh": np.arctanh,
           "rsqr": lambda v: 1 / (v * v)}
    body = "\n".join(f"    y_{op} = {op}(x);" for op in ops)
    body += ("\n    y_softabs = softabs(x, epsilon = 0.01);\n    y_log2 = log2(abs(x));"
             "\n    y_acosh = acosh(add(abs(x), 1.5));")
    names = [f"y_{op}" for op in ops] + ["y_softabs", "y_log2", "y_acosh"]
    out = run_text(tmp_path, body, {"x": x}, names)
    x64 = x.astype(np.float64)
    for op, fn in ops.items():
        np.testing.assert_allclose(out[f"y_{op}"], fn(x64), rtol=2e-5, atol=1e-6, err_msg=op)
    np.testing.assert_allclose(out["y_softabs"], np.sqrt(x64 * x64 + 0.01), rtol=1e-5)
    np.testing.assert_allclose(out["y_log2"], np.log2(np.abs(x64)), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(out["y_acosh"], np.arccosh(np.abs(x64) + 1.5), rtol=1e-5)


def test_stack_unstack_tile(tmp_path):
    a = rng.standard_normal((2, 3, 4)).astype(np.float32)
    b = rng.standard_normal((2, 3, 4)).astype(np.float32)
    body = ("    s = stack([a, b], axis = 1);\n"
            "    [u0, u1, u2] = unstack(a, axis = 1);\n"
            "    t = tile(b, repeats = [1, 2, 3]);")
    out = run_text(tmp_path, body, {"a": a, "b": b}, ["s", "u0", "u1", "u2", "t"])
    np.testing.assert_array_equal(out["s"], np.stack([a, b], axis=1))
    for i in range(3):
        np.testing.assert_array_equal(out[f"u{i}"], a[:, i])
    np.testing.assert_array_equal(out["t"], np.tile(b, (1, 2, 3)))
