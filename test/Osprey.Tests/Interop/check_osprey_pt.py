"""Reads a save_pt checkpoint with torch.load (weights_only=True where this torch reads every opcode it uses, i.e. torch
>= 2; on 1.x it checks instead that every global the pickle names is in torch's own weights-only allow-list) and prints
JSON: metadata, and per tensor its dtype, shape and the sha256 of its bytes.

usage: check_osprey_pt.py FILE.pt
"""
import hashlib
import json
import pickletools
import sys
import zipfile

import torch
from torch import _weights_only_unpickler

path = sys.argv[1]
archive = zipfile.ZipFile(path)
names = archive.namelist()
pickle_bytes = archive.read("archive/data.pkl")
globals_named = []
for op, arg, _ in pickletools.genops(pickle_bytes):
    if op.name in ("GLOBAL", "INST"):
        globals_named.append(arg.replace(" ", "."))
    elif op.name == "STACK_GLOBAL":
        globals_named.append("STACK_GLOBAL")
allowed = _weights_only_unpickler._get_allowed_globals()
weights_only = int(torch.__version__.split(".")[0]) >= 2
checkpoint = torch.load(path, map_location="cpu", weights_only=weights_only)
try:
    torch.load(path, map_location="cpu", weights_only=True)
    strict_error = None
except Exception as e:  # torch 1.13's weights-only reader lacks BINFLOAT (floats in train_args, best_fitness)
    strict_error = str(e)
state = checkpoint["model_state"]
print(json.dumps({
    "torch": torch.__version__,
    "weights_only": weights_only,
    "weights_only_error": strict_error,
    "entries": names,
    "globals": sorted(set(globals_named)),
    "not_allowed": sorted(g for g in set(globals_named) if g not in allowed),
    "keys": sorted(checkpoint.keys()),
    "state_type": type(state).__name__,
    "tensors": {k: [str(v.dtype), list(v.shape), hashlib.sha256(v.contiguous().numpy().tobytes()).hexdigest()] for k, v in state.items()},
    "names": {str(k): v for k, v in checkpoint["names"].items()},
    "nc": checkpoint["nc"],
    "yaml_layers": len(checkpoint["yaml"]["backbone"]) + len(checkpoint["yaml"]["head"]),
    "yaml_scale": checkpoint["yaml"].get("scale"),
    "train_args": {k: checkpoint["train_args"][k] for k in ("lr0", "imgsz", "save_pt", "device")},
    "epoch": checkpoint["epoch"],
    "best_fitness": checkpoint["best_fitness"],
    "date": checkpoint["date"],
}))
