using Osprey.Evaluation;

namespace Osprey.Inference;

/// <summary>Settings of <see cref="Predictor"/> (Ultralytics' predict defaults).</summary>
public sealed record PredictOptions
{
    /// <summary>Square input size (a multiple of the model's largest stride), 640.</summary>
    public int ImageSize { get; init; } = 640;

    /// <summary>Keep detections whose confidence is strictly above this (0.25).</summary>
    public float Confidence { get; init; } = NmsOptions.PredictConfidence;

    /// <summary>NMS IoU threshold (0.7).</summary>
    public float Iou { get; init; } = 0.7f;

    /// <summary>Detections kept per image (300).</summary>
    public int MaxDetections { get; init; } = 300;

    /// <summary>Keep only these class indices; null keeps all.</summary>
    public IReadOnlyCollection<int>? Classes { get; init; }

    /// <summary>Class-agnostic NMS.</summary>
    public bool Agnostic { get; init; }

    /// <summary>Run the model in float16 (CUDA only; ignored on the CPU).</summary>
    public bool Half { get; init; }

    /// <summary>The NMS settings these options mean.</summary>
    public NmsOptions Nms => new()
    {
        ConfidenceThreshold = Confidence, IouThreshold = Iou, MaxDetections = MaxDetections, Classes = Classes, Agnostic = Agnostic,
    };
}
