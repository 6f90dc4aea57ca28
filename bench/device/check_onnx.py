"""Checks an `osprey export` ONNX file: bench/device/check_onnx.py EXPORT.onnx REFERENCE_FP32.onnx EXPECTED_TYPE

EXPECTED_TYPE is float16 (half=True on a GPU) or float32 (half=True on the CPU falls back, as Ultralytics). Prints the
element types of `images`, `output0` and the initializers (read with the standard library: no onnx package needed) and,
where python3 has onnxruntime and numpy (the GPU machine does), runs both files on the CPU provider with one random
image and compares output0: boxes relative to the largest box value (limit 1e-2), class scores absolute (1e-3), the
limits of the CPU fp16 test (test/Osprey.Tests/Export). Exit status 0 only when every check that ran passed.
"""
import sys

TYPES = {1: "float32", 10: "float16", 11: "float64", 7: "int64", 6: "int32", 2: "uint8", 3: "int8"}


def fields(buf):
    """Yields (field number, wire type, value) of one protobuf message (value: int or bytes)."""
    i = 0
    while i < len(buf):
        key, i = varint(buf, i)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, i = varint(buf, i)
        elif wire == 1:
            value, i = buf[i:i + 8], i + 8
        elif wire == 2:
            length, i = varint(buf, i)
            value, i = buf[i:i + length], i + length
        elif wire == 5:
            value, i = buf[i:i + 4], i + 4
        else:
            raise ValueError(f"unsupported protobuf wire type {wire}")
        yield number, wire, value


def varint(buf, i):
    shift = result = 0
    while True:
        b = buf[i]
        i += 1
        result |= (b & 0x7F) << shift
        if b < 0x80:
            return result, i
        shift += 7


def one(buf, number):
    return next((v for n, _, v in fields(buf) if n == number), None)


def value_type(info):
    """elem_type of a ValueInfoProto (name 1, type 2 → tensor_type 1 → elem_type 1)."""
    tensor = one(one(info, 2) or b"", 1) or b""
    return TYPES.get(one(tensor, 1), str(one(tensor, 1)))


def describe(path):
    graph = one(open(path, "rb").read(), 7)
    if graph is None:
        raise ValueError(f"{path}: no graph (not an ONNX model)")
    inputs = {one(v, 1).decode(): value_type(v) for n, _, v in fields(graph) if n == 11}
    outputs = {one(v, 1).decode(): value_type(v) for n, _, v in fields(graph) if n == 12}
    counts = {}
    for n, _, v in fields(graph):
        if n == 5:
            t = TYPES.get(one(v, 2), str(one(v, 2)))
            counts[t] = counts.get(t, 0) + 1
    return inputs, outputs, counts


def main():
    export, reference, expected = sys.argv[1], sys.argv[2], sys.argv[3]
    inputs, outputs, counts = describe(export)
    print(f"{export}: images {inputs.get('images')}, output0 {outputs.get('output0')}, initializers {counts}")
    ok = inputs.get("images") == expected and outputs.get("output0") == expected
    other = "float32" if expected == "float16" else "float16"
    ok = ok and counts.get(expected, 0) > 0 and counts.get(other, 0) == 0
    print(f"types: {'PASS' if ok else 'FAIL'} (expected {expected} input, output and float initializers)")
    try:
        import numpy as np
        import onnxruntime as ort
    except ImportError as e:
        print(f"numbers: not compared ({e.name} is not installed in this python3)")
        return 0 if ok else 1
    providers = ["CPUExecutionProvider"]
    a = ort.InferenceSession(export, providers=providers)
    b = ort.InferenceSession(reference, providers=providers)
    shape = [d if isinstance(d, int) else 1 for d in b.get_inputs()[0].shape]
    image = np.random.default_rng(0).random(shape, dtype=np.float32)
    out_a = a.run(None, {"images": image.astype(np.float16 if inputs.get("images") == "float16" else np.float32)})[0].astype(np.float32)
    out_b = b.run(None, {"images": image})[0]
    box = float(np.abs(out_a[:, :4] - out_b[:, :4]).max() / max(float(np.abs(out_b[:, :4]).max()), 1e-6))
    score = float(np.abs(out_a[:, 4:] - out_b[:, 4:]).max())
    close = box <= 1e-2 and score <= 1e-3
    print(f"numbers: {'PASS' if close else 'FAIL'} output0 {list(out_a.shape)} vs fp32 export: boxes max rel {box:.2e} (≤ 1e-2), "
          f"scores max abs {score:.2e} (≤ 1e-3); onnxruntime {ort.__version__}")
    return 0 if ok and close else 1


if __name__ == "__main__":
    sys.exit(main())
