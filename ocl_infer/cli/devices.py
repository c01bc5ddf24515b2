"""`ocl-infer devices`: every OpenCL platform and device, with the facts the engine uses."""

import argparse
import json


def register(sub: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    p = sub.add_parser("devices", help="list OpenCL platforms and devices")
    p.add_argument("--json", action="store_true", help="one JSON object per device")
    p.add_argument("--select", nargs="+", default=None, metavar="SEL",
                   help="only the devices these selectors match ('all', '0', 'cl:1', 'P:D', name part, gpu/cpu)")
    p.set_defaults(func=run)


def _mib(n: int) -> str:
    return f"{n / 2**20:,.0f} MiB"


def run(args: argparse.Namespace) -> int:
    from dataclasses import asdict

    from ocl_infer.engine.devices import list_devices

    devices = list_devices()  # DeviceError with install help when there is none
    if getattr(args, "select", None):
        from ocl_infer.engine.devices import select_devices

        devices = select_devices(args.select, devices)  # DeviceError naming a selector that matches nothing
    if args.json:
        for d in devices:
            print(json.dumps(asdict(d)))
        return 0
    header = ("#", "platform", "device", "type", "OpenCL", "CUs", "MHz", "global", "local", "max alloc", "fp16")
    rows = [
        (
            f"cl:{d.index}",
            d.platform,
            d.name,
            d.type,
            d.version.replace("OpenCL ", ""),
            str(d.compute_units),
            str(d.max_clock_mhz),
            _mib(d.global_mem_bytes),
            f"{d.local_mem_bytes // 1024} KiB",
            _mib(d.max_alloc_bytes),
            "yes" if d.fp16 else "no",
        )
        for d in devices
    ]
    widths = [max(len(r[i]) for r in (header, *rows)) for i in range(len(header))]
    for r in (header, *rows):
        print("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip())
    return 0
