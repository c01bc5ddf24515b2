"""Ctrl-C while OutputRecorder waits for its bag writer to open; run by test_replay_shutdown.py.

Writer.open sends SIGINT to the process as it starts, then takes 1 s (a slow disk): the interrupt lands in
the constructor while its writer thread runs. The process must then exit (KeyboardInterrupt, code 130 here);
a writer thread left waiting keeps it alive.
argv: <output bag path>.
"""

import os
import signal
import sys
import time
from pathlib import Path

import rclpy
from rclpy.context import Context
from rclpy.node import Node
from rclpy.signals import SignalHandlerOptions
from rosbags.rosbag2 import Writer

from ocl_infer.ros.replay import recorder as recorder_module
from ocl_infer.ros.replay.player import SimClock


def main(out: str) -> int:
    signal.signal(signal.SIGINT, signal.default_int_handler)
    slow_open = Writer.open

    def open_slowly(self: Writer) -> None:
        os.kill(os.getpid(), signal.SIGINT)  # Ctrl-C while the constructor waits for this open
        time.sleep(1.0)
        slow_open(self)

    Writer.open = open_slowly  # type: ignore[method-assign]
    context = Context()
    rclpy.init(context=context, signal_handler_options=SignalHandlerOptions.NO)
    node = Node("recorder_interrupt", context=context)
    try:
        recorder_module.OutputRecorder(node, Path(out), SimClock(0, rate=0.0))
    except KeyboardInterrupt:
        print("interrupted", flush=True)
        node.destroy_node()
        rclpy.try_shutdown(context=context)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
