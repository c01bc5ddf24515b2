"""Per-device runtime: program cache (memory and disk), buffers from the plan, the executor. Imports pyopencl."""

from ocl_infer.engine.runtime.executor import DeviceRuntime, InjectedFault
from ocl_infer.engine.runtime.program_cache import ProgramCache

__all__ = ["DeviceRuntime", "InjectedFault", "ProgramCache"]
