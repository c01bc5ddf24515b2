"""The NNEF ops the engine runs, and the compound fragments the parser lowers into them."""

from ocl_infer.engine.graph.custom_ops import CUSTOM_FRAGMENTS

UNARY_OPS = ("relu", "sigmoid", "tanh", "elu", "exp", "log", "sqrt", "rsqrt", "abs", "neg", "sqr", "rcp",
             "sign", "floor", "ceil", "round", "copy", "softplus", "leaky_relu", "silu", "selu", "gelu", "softabs",
             "sin", "cos", "tan", "asin", "acos", "atan", "sinh", "cosh", "asinh", "acosh", "atanh", "log2", "rsqr",
             "erf")  # erf: nnef-tools' custom fragment, run as one kernel (its body is a 1.5e-7 approximation)
BINARY_OPS = ("add", "sub", "mul", "div", "min", "max", "pow", "prelu")
# comparisons and logic: logical tensors are held as float32 0/1 (torch's floor division of indices uses them)
LOGICAL_OPS = ("lt", "gt", "le", "ge", "eq", "ne", "and", "or")
SUPPORTED_OPS: frozenset[str] = frozenset((
    *UNARY_OPS, *BINARY_OPS, "clamp",
    "conv", "deconv", "linear", "matmul", "batch_normalization",
    "max_pool", "avg_pool", "box", "mean_reduce", "max_reduce", "min_reduce", "sum_reduce", "softmax",
    "concat", "split", "slice", "reshape", "squeeze", "unsqueeze", "transpose", "pad",
    "nearest_upsample", "multilinear_upsample", "add_n", "stack", "unstack", "tile",
    *LOGICAL_OPS, "not", "select", "gather", "cast",
    *CUSTOM_FRAGMENTS,  # the custom fragments: top_k, gather_elements, mod, int_add, ...
))
# Compound fragments of the NNEF standard library that the parser expands into the ops above.
LOWERED_OPS = ["separable_conv", "separable_deconv", "planewise_conv", "planewise_deconv", "rms_pool",
               "local_response_normalization", "l2_normalization", "linear_quantize", "logarithmic_quantize",
               "moments", "area_downsample", "nearest_downsample", "argmax_pool", "sample", "desample",
               "local_mean_normalization", "local_variance_normalization", "local_contrast_normalization",
               "min_max_linear_quantize", "zero_point_linear_quantize"]
