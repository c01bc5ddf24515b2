"""Kernel families (one .py wrapper + .cl source each) and the op/variant -> wrapper registry."""

from ocl_infer.engine.kernels.base import Kernel, Launch
from ocl_infer.engine.kernels.registry import KERNELS, choose_kernel, kernel_for, register

__all__ = ["KERNELS", "Kernel", "Launch", "choose_kernel", "kernel_for", "register"]
