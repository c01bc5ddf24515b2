"""YOLOv3-tiny conv layer shapes, read from Darknet's yolov3-tiny.cfg (no weights needed)."""

from dataclasses import dataclass
from pathlib import Path

from ocl_infer.detection.darknet import parse_cfg

CFG = Path(__file__).resolve().parents[2] / ".cache" / "data" / "darknet" / "cfg" / "yolov3-tiny.cfg"


@dataclass(frozen=True)
class ConvLayer:
    index: int  # Darknet layer index
    cin: int
    cout: int
    h: int
    w: int
    ks: int
    leaky: bool
    pool_after: int  # stride of a following 2x2 max-pool (0: none)

    @property
    def flops(self) -> int:
        return 2 * self.cin * self.cout * self.h * self.w * self.ks * self.ks

    @property
    def name(self) -> str:
        pool = f"+pool{self.pool_after}" if self.pool_after else ""
        return f"L{self.index:02d} {self.ks}x{self.ks} {self.cin}->{self.cout} @{self.h}{pool}"


def yolov3_tiny_convs(size: int = 416, cfg: Path = CFG) -> list[ConvLayer]:
    """Walk the cfg, tracking (channels, h, w) per layer; routes and upsample included."""
    secs = [{"type": sec.kind, **sec.options} for sec in parse_cfg(cfg)]  # the importer's own cfg parser
    shapes: list[tuple[int, int, int]] = []
    c, h, w = 3, size, size
    convs: list[ConvLayer] = []
    for i, s in enumerate(secs[1:]):
        t = s["type"]
        if t == "convolutional":
            ks = int(s["size"])
            cout = int(s["filters"])
            convs.append(ConvLayer(i, c, cout, h, w, ks, s.get("activation") == "leaky", 0))
            c = cout
        elif t == "maxpool":
            stride = int(s["stride"])
            last = convs[-1]
            if last.index == i - 1:
                convs[-1] = ConvLayer(last.index, last.cin, last.cout, last.h, last.w, last.ks, last.leaky, stride)
            h, w = h // stride, w // stride
        elif t == "upsample":
            h, w = h * 2, w * 2
        elif t == "route":
            idx = [int(v) for v in s["layers"].split(",")]
            idx = [i + v if v < 0 else v for v in idx]
            c = sum(shapes[j][0] for j in idx)
            h, w = shapes[idx[0]][1], shapes[idx[0]][2]
        shapes.append((c, h, w))
    return convs


if __name__ == "__main__":
    total = 0
    for layer in yolov3_tiny_convs():
        total += layer.flops
        print(f"{layer.name:34s} {layer.flops / 1e6:8.1f} MFLOP")
    print(f"total {total / 1e9:.3f} GFLOP")
