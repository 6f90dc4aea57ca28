#!/usr/bin/env python3
"""PyTorch reference for `osprey bench train`: one YOLOv8 training step of the model alone, timed.

The same YOLOv8 detection model as Osprey's (Ultralytics' yolov8.yaml: Conv, C2f, SPPF, Detect with DFL), written
here in plain PyTorch (no ultralytics package), at the same scale, class count, batch, image size, precision
(torch.autocast to bf16/fp16, GradScaler for fp16) and memory layout (channels_last), on synthetic input. One step =
forward, loss = sum over levels of mean(map^2) in fp32, backward, unscale, clip at 10, SGD (Nesterov, momentum 0.937,
weight decay 5e-4). No data loading, no detection loss, no EMA: what is left is the model step that Osprey's
end-to-end number is compared with.

Prints one JSON line: {"img_per_s", "params", "description"} or {"error"} (exit 3) when torch cannot be imported.
"""
import argparse
import contextlib
import json
import math
import sys
import time

try:
    import torch
    import torch.nn as nn
except Exception as e:  # noqa: BLE001 - any import failure means: no reference here
    print(json.dumps({"error": f"{sys.executable} cannot import torch ({type(e).__name__}: {e})"}))
    sys.exit(3)

SCALES = {  # depth, width, max_channels (yolov8.yaml)
    "n": (0.33, 0.25, 1024),
    "s": (0.33, 0.50, 1024),
    "m": (0.67, 0.75, 768),
    "l": (1.00, 1.00, 512),
    "x": (1.00, 1.25, 512),
}


class Conv(nn.Module):
    """Conv2d (no bias, same padding) -> BatchNorm2d(eps 1e-3, momentum 0.03) -> SiLU."""

    def __init__(self, c1, c2, k=1, s=1):
        super().__init__()
        self.conv = nn.Conv2d(c1, c2, k, s, k // 2, bias=False)
        self.bn = nn.BatchNorm2d(c2, eps=1e-3, momentum=0.03)
        self.act = nn.SiLU()

    def forward(self, x):
        return self.act(self.bn(self.conv(x)))


class Bottleneck(nn.Module):
    def __init__(self, c, shortcut):
        super().__init__()
        self.cv1 = Conv(c, c, 3)
        self.cv2 = Conv(c, c, 3)
        self.add = shortcut

    def forward(self, x):
        y = self.cv2(self.cv1(x))
        return x + y if self.add else y


class C2f(nn.Module):
    def __init__(self, c1, c2, n, shortcut):
        super().__init__()
        self.c = int(c2 * 0.5)
        self.cv1 = Conv(c1, 2 * self.c, 1)
        self.cv2 = Conv((2 + n) * self.c, c2, 1)
        self.m = nn.ModuleList(Bottleneck(self.c, shortcut) for _ in range(n))

    def forward(self, x):
        y = list(self.cv1(x).chunk(2, 1))
        for m in self.m:
            y.append(m(y[-1]))
        return self.cv2(torch.cat(y, 1))


class SPPF(nn.Module):
    def __init__(self, c1, c2, k=5):
        super().__init__()
        c_ = c1 // 2
        self.cv1 = Conv(c1, c_, 1)
        self.cv2 = Conv(c_ * 4, c2, 1)
        self.m = nn.MaxPool2d(k, 1, k // 2)

    def forward(self, x):
        y = [self.cv1(x)]
        for _ in range(3):
            y.append(self.m(y[-1]))
        return self.cv2(torch.cat(y, 1))


class Detect(nn.Module):
    def __init__(self, nc, ch, reg_max=16):
        super().__init__()
        c2, c3 = max(16, ch[0] // 4, reg_max * 4), max(ch[0], min(nc, 100))
        self.cv2 = nn.ModuleList(nn.Sequential(Conv(x, c2, 3), Conv(c2, c2, 3), nn.Conv2d(c2, 4 * reg_max, 1)) for x in ch)
        self.cv3 = nn.ModuleList(nn.Sequential(Conv(x, c3, 3), Conv(c3, c3, 3), nn.Conv2d(c3, nc, 1)) for x in ch)
        self.dfl = nn.Conv2d(reg_max, 1, 1, bias=False).requires_grad_(False)  # counted, not trained (training maps only)

    def forward(self, xs):
        return [torch.cat((a(x), b(x)), 1) for a, b, x in zip(self.cv2, self.cv3, xs)]


def make_divisible(x, divisor=8):
    return math.ceil(x / divisor) * divisor


class YOLOv8(nn.Module):
    """yolov8.yaml, rows 0-22; forward returns the three raw maps (b, 4*16 + nc, h, w)."""

    def __init__(self, scale, nc):
        super().__init__()
        depth, width, max_channels = SCALES[scale]
        ch = lambda c: make_divisible(min(c, max_channels) * width)  # noqa: E731
        n = lambda r: max(round(r * depth), 1) if r > 1 else r  # noqa: E731
        self.model = nn.ModuleList([
            Conv(3, ch(64), 3, 2),                                   # 0  P1/2
            Conv(ch(64), ch(128), 3, 2),                             # 1  P2/4
            C2f(ch(128), ch(128), n(3), True),                       # 2
            Conv(ch(128), ch(256), 3, 2),                            # 3  P3/8
            C2f(ch(256), ch(256), n(6), True),                       # 4
            Conv(ch(256), ch(512), 3, 2),                            # 5  P4/16
            C2f(ch(512), ch(512), n(6), True),                       # 6
            Conv(ch(512), ch(1024), 3, 2),                           # 7  P5/32
            C2f(ch(1024), ch(1024), n(3), True),                     # 8
            SPPF(ch(1024), ch(1024), 5),                             # 9
            nn.Upsample(None, 2, "nearest"),                         # 10
            nn.Identity(),                                           # 11 Concat [-1, 6]
            C2f(ch(1024) + ch(512), ch(512), n(3), False),           # 12
            nn.Upsample(None, 2, "nearest"),                         # 13
            nn.Identity(),                                           # 14 Concat [-1, 4]
            C2f(ch(512) + ch(256), ch(256), n(3), False),            # 15 (P3/8)
            Conv(ch(256), ch(256), 3, 2),                            # 16
            nn.Identity(),                                           # 17 Concat [-1, 12]
            C2f(ch(256) + ch(512), ch(512), n(3), False),            # 18 (P4/16)
            Conv(ch(512), ch(512), 3, 2),                            # 19
            nn.Identity(),                                           # 20 Concat [-1, 9]
            C2f(ch(512) + ch(1024), ch(1024), n(3), False),          # 21 (P5/32)
            Detect(nc, (ch(256), ch(512), ch(1024))),                # 22
        ])

    def forward(self, x):
        m = self.model
        x = m[0](x)
        x = m[1](x)
        x = m[2](x)
        x = m[3](x)
        p4 = m[4](x)
        x = m[5](p4)
        p6 = m[6](x)
        x = m[7](p6)
        x = m[8](x)
        p9 = m[9](x)
        p12 = m[12](torch.cat((m[10](p9), p6), 1))
        p15 = m[15](torch.cat((m[13](p12), p4), 1))
        p18 = m[18](torch.cat((m[16](p15), p12), 1))
        p21 = m[21](torch.cat((m[19](p18), p9), 1))
        return m[22]([p15, p18, p21])


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", default="n", choices=sorted(SCALES))
    parser.add_argument("--nc", type=int, default=80)
    parser.add_argument("--imgsz", type=int, default=640)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--dtype", default="bf16", choices=["fp32", "bf16", "fp16"])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--channels-last", action="store_true")
    parser.add_argument("--cudnn-benchmark", action="store_true")
    parser.add_argument("--deterministic", action="store_true", help="torch.backends.cudnn.deterministic = True")
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--params-only", action="store_true", help="print the parameter count and exit")
    args = parser.parse_args()

    torch.manual_seed(0)
    model = YOLOv8(args.scale, args.nc)
    params = sum(p.numel() for p in model.parameters())
    if args.params_only:
        print(json.dumps({"params": params}))
        return
    device = torch.device(args.device)
    torch.backends.cudnn.benchmark = args.cudnn_benchmark
    torch.backends.cudnn.deterministic = args.deterministic
    dtype = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}[args.dtype]
    model = model.to(device).train()
    fmt = torch.channels_last if args.channels_last else torch.contiguous_format
    model = model.to(memory_format=fmt)
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.SGD(trainable, lr=0.01, momentum=0.937, nesterov=True, weight_decay=5e-4)
    # torch.amp.GradScaler (torch >= 2.3) or the older CUDA one; disabled unless fp16.
    scaler = (torch.amp.GradScaler(device.type, enabled=dtype == torch.float16) if hasattr(torch.amp, "GradScaler")
              else torch.cuda.amp.GradScaler(enabled=dtype == torch.float16))
    x = torch.rand(args.batch, 3, args.imgsz, args.imgsz, device=device).contiguous(memory_format=fmt)

    def step():
        # fp32: no autocast context at all (older torch rejects dtype float32 even when disabled)
        with (torch.autocast(device_type=device.type, dtype=dtype) if dtype != torch.float32 else contextlib.nullcontext()):
            maps = model(x)
        loss = sum(m.float().square().mean() for m in maps)
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.unscale_(optimizer)
        torch.nn.utils.clip_grad_norm_(trainable, 10.0)
        scaler.step(optimizer)
        scaler.update()

    def sync():
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    for _ in range(args.warmup):
        step()
    sync()
    start = time.perf_counter()
    for _ in range(args.steps):
        step()
    sync()
    seconds = time.perf_counter() - start
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    layout = ", channels_last" if args.channels_last else ""
    flags = f", cudnn benchmark={args.cudnn_benchmark} deterministic={args.deterministic}" if device.type == "cuda" else ""
    print(json.dumps({
        "img_per_s": args.batch * args.steps / seconds,
        "params": params,
        "seconds": seconds,
        "description": f"torch {torch.__version__}, yolov8{args.scale} nc {args.nc}, {args.dtype}{layout}, {name}{flags}, "
                       f"{args.steps} steps after {args.warmup}",
    }))


if __name__ == "__main__":
    main()
