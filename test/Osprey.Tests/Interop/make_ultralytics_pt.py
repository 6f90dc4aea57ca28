"""Writes a checkpoint pickled the way Ultralytics' trainer pickles one (torch.save of a dict holding a whole fp16
DetectionModel), from weights Osprey exported, for UltralyticsCheckpointTests.

usage: make_ultralytics_pt.py WEIGHTS.safetensors META.json OUT.pt

META.json: {"yaml": <the model's yaml dict>, "names": [...], "ema": bool (put the model under 'ema', 'model' None)}.
Ultralytics itself is not installed: its classes are stand-ins declared under the same module paths
(ultralytics.nn.tasks.DetectionModel, ultralytics.nn.modules.conv.Conv, ...block.C2f, ...head.Detect, ...) so that the
pickle names exactly the globals a real checkpoint names; Conv2d, BatchNorm2d, SiLU, ModuleList, Sequential and Upsample
are torch's own modules.
"""
import copy
import datetime
import json

import numpy
import struct
import sys
import types

import torch
import torch.nn as nn

DTYPES = {"F32": torch.float32, "F16": torch.float16, "I64": torch.int64, "F64": torch.float64, "I32": torch.int32}


def read_safetensors(path):
    data = open(path, "rb").read()
    (length,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + length])
    tensors = {}
    for key, entry in header.items():
        if key == "__metadata__":
            continue
        begin, end = entry["data_offsets"]
        raw = bytearray(data[8 + length + begin:8 + length + end])
        tensors[key] = torch.frombuffer(raw, dtype=DTYPES[entry["dtype"]]).reshape(entry["shape"]).clone()
    return tensors


def stand_in(module_path, name, base=nn.Module):
    """A class `name` importable as module_path.name (what pickle records)."""
    parts = module_path.split(".")
    for i in range(1, len(parts) + 1):
        sys.modules.setdefault(".".join(parts[:i]), types.ModuleType(".".join(parts[:i])))
    module = sys.modules[module_path]
    if not hasattr(module, name):
        setattr(module, name, type(name, (base,), {"__module__": module_path}))
    return getattr(module, name)


def new(cls):
    obj = cls.__new__(cls)
    nn.Module.__init__(obj)
    return obj


def tree(keys):
    root = {}
    for key in keys:
        node = root
        for part in key.split(".")[:-1]:
            node = node.setdefault(part, {})
        node.setdefault("", []).append(key.split(".")[-1])
    return root


def leaf(node, prefix, weights):
    """torch's own Conv2d / BatchNorm2d holding the tensors (parameters and buffers)."""
    names = node[""]
    module = new(nn.BatchNorm2d if "running_mean" in names else nn.Conv2d)
    for name in names:
        tensor = weights[prefix + name]
        if name in ("weight", "bias"):
            module.register_parameter(name, nn.Parameter(tensor, requires_grad=tensor.is_floating_point()))
        else:
            module.register_buffer(name, tensor)
    return module


def build(node, prefix, weights, class_name):
    children = {k: v for k, v in node.items() if k != ""}
    if "" in node and not children:
        return leaf(node, prefix, weights)
    if children and all(k.isdigit() for k in children):
        module = nn.ModuleList() if class_name != "Sequential" else nn.Sequential()
        for k in sorted(children, key=int):
            module.add_module(k, build(children[k], f"{prefix}{k}.", weights, "Bottleneck"))
        return module
    if "conv" in children and "bn" in children:
        module = new(stand_in("ultralytics.nn.modules.conv", "Conv"))
    else:
        module = new(stand_in(module_path(class_name), class_name))
    for k, child in children.items():
        sub = {"dfl": "DFL", "attn": "Attention", "cv2": "Sequential", "cv3": "Sequential"}.get(k, "Bottleneck")
        module.add_module(k, build(child, f"{prefix}{k}.", weights, sub))
    if "conv" in children and "bn" in children:
        module.add_module("act", nn.SiLU(inplace=True))
    return module


def module_path(name):
    if name in ("Conv", "Concat", "DWConv"):
        return "ultralytics.nn.modules.conv"
    if name in ("Detect", "v10Detect"):
        return "ultralytics.nn.modules.head"
    return "ultralytics.nn.modules.block"


def layer(index, row, node, weights):
    name = row[2]
    if name.startswith("nn."):
        return getattr(nn, name[3:])(scale_factor=2.0, mode="nearest")
    module = build(node, f"model.{index}.", weights, name) if node else new(stand_in(module_path(name), name))
    module.f, module.i, module.type = row[0], index, f"{module_path(name)}.{name}"
    if name.endswith("Detect"):
        module.nc, module.nl, module.reg_max = len(META["names"]), 3, 16
        module.stride = torch.tensor([8.0, 16.0, 32.0])
        module.anchors, module.strides = torch.empty(0), torch.empty(0)
    return module


if __name__ == "__main__":
    weights_path, meta_path, out_path = sys.argv[1:4]
    META = json.load(open(meta_path))
    weights = read_safetensors(weights_path)
    nodes = tree(weights)["model"]
    rows = META["yaml"]["backbone"] + META["yaml"]["head"]
    model = new(stand_in("ultralytics.nn.tasks", "DetectionModel"))
    model.add_module("model", nn.Sequential(*[layer(i, row, nodes.get(str(i)), weights) for i, row in enumerate(rows)]))
    model.yaml, model.names = META["yaml"], dict(enumerate(META["names"]))
    model.stride, model.save, model.task = torch.tensor([8.0, 16.0, 32.0]), [4, 6, 9], "detect"
    model.args = stand_in("ultralytics.utils", "IterableSimpleNamespace", types.SimpleNamespace)(imgsz=640, task="detect")
    model = copy.deepcopy(model).half()
    checkpoint = {
        "date": datetime.datetime.now().isoformat(), "version": "8.3.143", "license": "AGPL-3.0 License",
        "docs": "https://docs.ultralytics.com", "epoch": -1, "best_fitness": None,
        "model": None if META.get("ema") else model, "ema": model if META.get("ema") else None, "updates": None,
        "optimizer": None,
        "train_args": {"task": "detect", "mode": "train", "model": "yolov8n.yaml", "data": "coco.yaml", "epochs": 100,
                       "imgsz": 640, "lr0": 0.01, "amp": True, "device": None},
        "train_metrics": {"metrics/mAP50(B)": 0.5}, "train_results": {"epoch": [1, 2], "fitness": [0.1, 0.2]},
    }
    if META.get("ema"):  # a training-time last.pt: optimizer state, numpy fitness, EMA updates
        optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
        for p in model.parameters():
            p.grad = torch.zeros_like(p)
        optimizer.step()
        checkpoint.update(optimizer=optimizer.state_dict(), best_fitness=numpy.float64(0.6543), updates=1234, epoch=7)
    torch.save(checkpoint, out_path)
