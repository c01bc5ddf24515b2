"""Kernel families (one .py wrapper + .cl source each) and the op/variant -> wrapper registry.

This is the one place the built-in families are imported, for their `register` side effect: Python runs this
file before any module of the package, so `registry.KERNELS` is complete whichever kernel module a caller
imports first. A new family module goes into `FAMILIES` (test/engine/test_kernel_registry.py fails otherwise)."""

from ocl_infer.engine.kernels import (
    conv,
    conv_covec,
    conv_depthwise,
    conv_gemm,
    conv_pixels,
    conv_pointwise,
    conv_winograd,
    conv_winograd4,
    elementwise,
    indexing,
    layout,
    matmul,
    normalization,
    pool,
)
from ocl_infer.engine.kernels.base import Kernel, Launch
from ocl_infer.engine.kernels.registry import KERNELS, choose_kernel, kernel_for, register

FAMILIES = (conv, conv_covec, conv_depthwise, conv_gemm, conv_pixels, conv_pointwise, conv_winograd, conv_winograd4,
            elementwise, indexing, layout, matmul, normalization, pool)

__all__ = ["FAMILIES", "KERNELS", "Kernel", "Launch", "choose_kernel", "kernel_for", "register"]
