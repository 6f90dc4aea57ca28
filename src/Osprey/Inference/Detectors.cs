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
    public static IDetector Open(string model, string backend = "auto", PredictOptions? options = null, Device? device = null)
    {
        bool onnx = model.EndsWith(".onnx", StringComparison.OrdinalIgnoreCase);
        switch (backend)
        {
            case "auto" when onnx && (device is null || device.type == DeviceType.CPU):
            case "onnxruntime" when onnx:
                return new OnnxDetector(model, options);
            case "onnxruntime":
                throw new ArgumentException($"backend=onnxruntime needs an exported .onnx model, not '{model}' (export it with `osprey export`).");
            case "auto":
            case "torch":
                return Predictor.Load(model, options, device);
            default:
                throw new ArgumentException($"backend={backend}: expected one of {string.Join(", ", Backends)}.");
        }
    }
}
