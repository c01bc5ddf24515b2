"""NNEF load and save, and the immutable Graph the planner works on."""

from ocl_infer.engine.graph.loader import load_graph, model_folder
from ocl_infer.engine.graph.model import Graph, Op, Tensor
from ocl_infer.engine.graph.ops import SUPPORTED_OPS
from ocl_infer.engine.graph.writer import save_graph

__all__ = ["SUPPORTED_OPS", "Graph", "Op", "Tensor", "load_graph", "model_folder", "save_graph"]
