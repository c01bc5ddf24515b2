"""The managed (lifecycle) vehicle_detector, as Nav2 and Autoware users run their nodes.

The same node as `vehicle_detector` (same parameters, topics, rules and diagnostics), driven by the lifecycle
state machine (`~/change_state`, `ros2 lifecycle set`, a launch file's ChangeState events) instead of starting
all at once:

  unconfigured  parameters declared (live ones settable), nothing else
  configure     loads the model and builds its OpenCL kernels (a warm-up frame), makes the publishers
  activate      fresh statistics, diagnostics timers, workers, label_info, then the camera subscriptions
  deactivate    unsubscribes and stops workers and timers; the model and its device buffers stay loaded, so a
                later activate is immediate
  cleanup       destroys the publishers and closes the detector: its devices, buffers and kernels are freed
  shutdown      from any state: whatever is running is stopped and freed

A transition that fails (a bad model, an unknown class, no OpenCL device) is logged with the reason, what it
made is freed, and it returns FAILURE (back to unconfigured, so configure can be tried again).

Why a subclass of the plain node rather than a copy: the plain node is the same phases run back to back
(`VehicleDetectorNode._start`); this class only maps the lifecycle callbacks onto them. The MRO puts
`LifecycleNode` between `VehicleDetectorNode` and `Node`, so the plain node's `super()` calls reach it.
"""

from __future__ import annotations

import time
import traceback
from typing import Any

from rclpy.lifecycle import LifecycleNode, LifecycleState, TransitionCallbackReturn

from ocl_infer.errors import OclInferError
from ocl_infer.ros.vehicle_detector import VehicleDetectorNode


class ManagedVehicleDetectorNode(VehicleDetectorNode, LifecycleNode):
    """See the module docstring. `detector` may be passed in (shared: cleanup then leaves it open)."""

    def __init__(self, node_name: str = "vehicle_detector", *, detector: Any = None, **kwargs: Any) -> None:
        self._shared_detector = detector
        self._active = False
        self.transition_error = ""  # why the last transition failed (empty when it succeeded)
        self.failure: OclInferError | None = None  # the error behind it, for bring_to_active to raise
        super().__init__(node_name, detector=detector, **kwargs)

    def _start(self, detector: Any) -> None:
        """Construction: parameters only; the lifecycle transitions do the rest."""
        self._declare()
        self.get_logger().info("unconfigured: configure loads the model and builds the kernels "
                               "(ros2 lifecycle set <node> configure)")

    def _fail(self, transition: str, err: OclInferError) -> TransitionCallbackReturn:
        self.failure = err
        self.transition_error = f"{transition} failed: {err}"
        self.get_logger().error(self.transition_error)
        return TransitionCallbackReturn.FAILURE

    def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
        start = time.monotonic()
        try:
            self._configure(self._shared_detector)
        except OclInferError as err:  # bad model, class or device: free what was made, stay unconfigured
            self._cleanup()
            return self._fail("configure", err)
        except Exception as err:  # a bug: rclpy would turn it into ERROR without a word, so say it first
            self.transition_error = f"configure failed: {err!r}"
            self.get_logger().error(f"{self.transition_error}\n{traceback.format_exc()}")
            return TransitionCallbackReturn.ERROR  # on_error frees what was made
        self.transition_error, self.failure = "", None
        self.get_logger().info(f"configured in {time.monotonic() - start:.1f} s: model loaded and kernels built, "
                               f"device {getattr(self.detector, 'device', '?')}")
        return super().on_configure(state)

    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._activate()
        self._active = True
        self.transition_error = ""
        return super().on_activate(state)

    def on_deactivate(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._deactivate()
        self._active = False
        self.get_logger().info("deactivated: camera subscriptions and workers stopped; the model stays loaded")
        return super().on_deactivate(state)

    def on_cleanup(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._cleanup()
        self.get_logger().info("cleaned up: publishers destroyed, detector closed (devices freed)")
        return super().on_cleanup(state)

    def on_shutdown(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._stop_all()
        self.get_logger().info("shut down (finalized): everything stopped and freed")
        return super().on_shutdown(state)

    def on_error(self, state: LifecycleState) -> TransitionCallbackReturn:
        """A transition raised (a bug): free everything and go back to unconfigured."""
        self._stop_all()
        return TransitionCallbackReturn.SUCCESS

    def _stop_all(self) -> None:
        if self._active:
            self._deactivate()
            self._active = False
        self._cleanup()


def bring_to_active(node: ManagedVehicleDetectorNode) -> None:
    """configure, then activate, as a launch file's ChangeState events do (`ocl-infer launch --managed`). A
    transition that fails raises the error behind it."""
    for transition, trigger in (("configure", node.trigger_configure), ("activate", node.trigger_activate)):
        if trigger() != TransitionCallbackReturn.SUCCESS:
            raise node.failure or OclInferError(node.transition_error or f"{transition} failed (see the log)")
