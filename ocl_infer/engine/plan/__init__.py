"""Planning: fusion, kernel choice per op, weight re-layout and a liveness buffer plan. Needs no device."""

from ocl_infer.engine.plan.memory import plan_buffers
from ocl_infer.engine.plan.model import BufferPlan, DeviceFacts, Plan, Step, scratch_slots
from ocl_infer.engine.plan.planner import make_plan

__all__ = ["BufferPlan", "DeviceFacts", "Plan", "Step", "make_plan", "plan_buffers", "scratch_slots"]
