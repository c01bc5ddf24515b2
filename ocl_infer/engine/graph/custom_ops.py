"""The NNEF custom fragments (NNEF's extension mechanism) the engine runs beyond the standard ops: their
declarations, written into graph.nnef by the ONNX converter (graph/onnx_custom.py), and their shape functions,
used by nnef-tools' writer and by our loader (`nnef.infer_shapes`).

The engine has a kernel for each, so the parser lowers none of them; those NNEF cannot express have no
body. Integer tensors (ONNX int64 indices) are `tensor<integer>`; NNEF's arithmetic is scalar-only, so integer
add/sub/mul/div are fragments of their own (`int_div` truncates as ONNX's integer Div does)."""

from typing import Any

CUSTOM_FRAGMENTS: dict[str, str] = {
    "top_k": """
fragment top_k( input: tensor<scalar>, k: integer, axis: integer, largest: logical = true, sorted: logical = true )
-> ( values: tensor<scalar>, indices: tensor<integer> );
""",
    "gather_elements": """
fragment gather_elements<? = scalar>( input: tensor<?>, indices: tensor<integer>, axis: integer )
-> ( output: tensor<?> );
""",
    "mod": """
fragment mod<? = scalar>( x: tensor<?>, y: tensor<?>, fmod: logical = false ) -> ( z: tensor<?> );
""",
    # with its NNEF definition (nnef-tools' mean_variance_normalization), so other NNEF consumers can lower it;
    # the engine runs it as one kernel
    "layer_normalization": """
fragment layer_normalization( input: tensor<scalar>, scale: tensor<scalar>, offset: tensor<scalar>,
                              axes: integer[], epsilon: scalar = 1e-5 ) -> ( output: tensor<scalar> )
{
    mean, variance = moments(input, axes = axes);
    output = scale * (input - mean) / sqrt(variance + epsilon) + offset;
}
""",
    "grid_sample": """
fragment grid_sample( input: tensor<scalar>, grid: tensor<scalar>, mode: string = 'linear',
                      padding_mode: string = 'zeros', align_corners: logical = false ) -> ( output: tensor<scalar> );
""",
    "xor": """
fragment xor( x: tensor<logical>, y: tensor<logical> ) -> ( z: tensor<logical> );
""",
    **{f"int_{op}": f"""
fragment int_{op}( x: tensor<integer>, y: tensor<integer> ) -> ( z: tensor<integer> );
""" for op in ("add", "sub", "mul", "div")},
}


def _top_k_shape(input: list[int], k: int, axis: int, **_: Any) -> tuple[list[int], list[int]]:
    assert 0 <= axis < len(input), f"axis {axis} out of range for rank {len(input)}"
    assert 0 < k <= input[axis], f"k = {k} must be in [1, {input[axis]}] (the axis length)"
    out = list(input)
    out[axis] = k
    return out, list(out)


def _broadcast_shape(x: list[int], y: list[int], **_: Any) -> list[int]:
    """NNEF broadcasting: operands of the output's rank (or rank 0), each dim equal or 1."""
    if not x or not y:
        return list(x or y)
    assert len(x) == len(y), f"ranks differ: {x} and {y}"
    assert all(a == b or 1 in (a, b) for a, b in zip(x, y, strict=True)), f"shapes {x} and {y} do not broadcast"
    return [max(a, b) for a, b in zip(x, y, strict=True)]


def _gather_elements_shape(input: list[int], indices: list[int], axis: int, **_: Any) -> list[int]:
    assert len(input) == len(indices), f"input rank {len(input)} != indices rank {len(indices)}"
    return list(indices)


CUSTOM_SHAPES: dict[str, Any] = {
    "top_k": _top_k_shape,
    "gather_elements": _gather_elements_shape,
    "mod": _broadcast_shape,
    "xor": _broadcast_shape,
    "layer_normalization": lambda input, scale, offset, **_: list(input),
    "grid_sample": lambda input, grid, **_: [input[0], input[1], grid[1], grid[2]],
    "erf": lambda x: list(x),  # nnef-tools' own fragment (ONNX Erf); the engine runs it as a unary op
    **{f"int_{op}": _broadcast_shape for op in ("add", "sub", "mul", "div")},
}
