using TorchSharp;
using static TorchSharp.torch;

namespace Osprey.Inference;

/// <summary>Opens a model for inference on the backend it runs best on (Ultralytics' AutoBackend rule).</summary>
public static class Detectors
{
    /// <summary>The backends <c>backend=</c> accepts.</summary>
    public static readonly IReadOnlyList<string> Backends = new[] { "auto", "torch", "onnxruntime" };

    /// <summary>
    /// <c>backend=auto</c> (the default): a <c>.onnx</c> file runs itself in ONNX Runtime (for a fresh YOLOv8n at 640 on a
    /// 2-core AVX2 CPU about 2× faster than TorchSharp, and ~10× for Ultralytics' int8 export, whose TorchSharp import emulates
    /// the integer arithmetic exactly), anything else (weights, YAML) in TorchSharp. <c>backend=torch</c> imports an ONNX
    /// file into TorchSharp; <c>backend=onnxruntime</c> needs a <c>.onnx</c> file.
    /// </summary>
    /// <exception cref="ArgumentException">An unknown backend, or onnxruntime for a file that is not ONNX.</exception>
    public static IDetector Open(string model, string backend = "auto", PredictOptions? options = null, Device? device = null) =>
        UsesOnnxRuntime(model, backend, device) ? new OnnxDetector(model, options) : Predictor.Load(model, options, device);

    /// <summary>Whether <see cref="Open"/> runs <paramref name="model"/> in ONNX Runtime (else in TorchSharp).</summary>
    /// <exception cref="ArgumentException">An unknown backend, or onnxruntime for a file that is not ONNX.</exception>
    public static bool UsesOnnxRuntime(string model, string backend, Device? device)
    {
        bool onnx = model.EndsWith(".onnx", StringComparison.OrdinalIgnoreCase);
        return backend switch
        {
            "auto" => onnx && (device is null || device.type == DeviceType.CPU),   // ONNX Runtime's CPU build is the one served
            "onnxruntime" when onnx => true,
            "onnxruntime" => throw new ArgumentException($"backend=onnxruntime needs an exported .onnx model, not '{model}' (export it with `osprey export`)."),
            "torch" => false,
            _ => throw new ArgumentException($"backend={backend}: expected one of {string.Join(", ", Backends)}."),
        };
    }
}
