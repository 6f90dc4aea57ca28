namespace Osprey.Evaluation;

/// <summary>Settings of <see cref="Nms.NonMaxSuppression"/> (Ultralytics <c>non_max_suppression</c> defaults).</summary>
public sealed record NmsOptions
{
    /// <summary>Ultralytics' predict threshold.</summary>
    public const float PredictConfidence = 0.25f;

    /// <summary>Ultralytics' validation threshold.</summary>
    public const float ValidationConfidence = 0.001f;

    /// <summary>Keep candidates whose score is strictly above this (0.25 predict, 0.001 val).</summary>
    public float ConfidenceThreshold { get; init; } = PredictConfidence;

    /// <summary>Suppress a box whose IoU with a kept box of the same class is strictly above this (0.7).</summary>
    public float IouThreshold { get; init; } = 0.7f;

    /// <summary>Detections kept per image (300).</summary>
    public int MaxDetections { get; init; } = 300;

    /// <summary>Candidates fed to NMS per image, highest scores first (30000).</summary>
    public int MaxNms { get; init; } = 30000;

    /// <summary>Emit every (box, class) pair above the threshold instead of the best class only.</summary>
    public bool MultiLabel { get; init; }

    /// <summary>Class-agnostic suppression.</summary>
    public bool Agnostic { get; init; }

    /// <summary>Keep only these classes; null keeps all.</summary>
    public IReadOnlyCollection<int>? Classes { get; init; }

    /// <summary>Per-class box offset that keeps classes apart (7680).</summary>
    public float MaxWh { get; init; } = 7680f;
}
