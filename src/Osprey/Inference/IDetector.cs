using OpenCvSharp;

namespace Osprey.Inference;

/// <summary>
/// A loaded detection model behind one backend (<see cref="Predictor"/>: TorchSharp; <see cref="OnnxDetector"/>: ONNX Runtime
/// on an exported graph): BGR images in, <see cref="Prediction"/>s in original pixels out, with Ultralytics' predict
/// semantics (letterbox, thresholds, NMS or the end-to-end top-k). <see cref="Detectors.Open"/> picks the backend.
/// Not thread-safe: one caller at a time (a server runs one inference worker per model).
/// </summary>
public interface IDetector : IDisposable
{
    /// <summary>"torch" or "onnxruntime".</summary>
    string Backend { get; }

    /// <summary>The model's class names.</summary>
    IReadOnlyList<string> Names { get; }

    /// <summary>Input size, thresholds.</summary>
    PredictOptions Options { get; }

    /// <summary>Detects objects in a batch of BGR images (any sizes).</summary>
    IReadOnlyList<Prediction> Predict(IReadOnlyList<Mat> bgrImages, IReadOnlyList<string>? sources = null);
}
