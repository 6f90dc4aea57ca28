using static TorchSharp.torch;

namespace Osprey.Losses;

/// <summary>Settings of <see cref="DetectionLoss"/> (Ultralytics <c>v8DetectionLoss</c> defaults).</summary>
public sealed record DetectionLossOptions
{
    /// <summary>Number of classes (nc).</summary>
    public required int NumClasses { get; init; }

    /// <summary>DFL bins per box side (16).</summary>
    public int RegMax { get; init; } = 16;

    /// <summary>Stride of each feature map, in the order the head emits them (8, 16, 32).</summary>
    public IReadOnlyList<float> Strides { get; init; } = new[] { 8f, 16f, 32f };

    /// <summary>Gain of the CIoU box loss (hyp <c>box</c>, 7.5).</summary>
    public double BoxGain { get; init; } = 7.5;

    /// <summary>Gain of the BCE class loss (hyp <c>cls</c>, 0.5).</summary>
    public double ClsGain { get; init; } = 0.5;

    /// <summary>Gain of the distribution focal loss (hyp <c>dfl</c>, 1.5).</summary>
    public double DflGain { get; init; } = 1.5;

    /// <summary>Assigner candidates per gt (<c>tal_topk</c>, 10).</summary>
    public int TopK { get; init; } = 10;

    /// <summary>
    /// Optional global reduction of the loss normaliser, for data-parallel training.
    /// <para>
    /// The three loss terms are sums over the batch divided by <c>target_scores_sum</c> = max(Σ target scores, 1).
    /// Called with this process's raw Σ target scores (a detached scalar tensor on the loss device), it must return
    /// the raw sum over the whole global batch, typically an all-reduce SUM across ranks; the loss then uses
    /// max(returned, 1). Null (default): the local sum, exactly Ultralytics' single-process behaviour.
    /// </para>
    /// <para>
    /// To make W ranks that each see B/W images reproduce the 1-process run over B images exactly:
    /// (1) set this to an all-reduce SUM, so every rank divides by the global normaliser;
    /// (2) then Σ over ranks of each rank's <see cref="DetectionLossResult.Items"/> equals the 1-process items
    /// (all-reduce SUM them for logging, not mean);
    /// (3) gradients: the 1-process total is (Σ terms / S)·B, rank r's is (Σ_r terms / S)·M, and DDP averages
    /// gradients over W, so set <see cref="LossBatchScale"/> M = W·B (= W²·local batch) for identical gradients,
    /// or keep the default (local batch size) and scale the gradients by W² yourself.
    /// </para>
    /// </summary>
    public Func<Tensor, Tensor>? ReduceTargetScoresSum { get; init; }

    /// <summary>
    /// Multiplier of the summed loss in <see cref="DetectionLossResult.Total"/>; null (default) = the local batch
    /// size, as Ultralytics (<c>loss.sum() * batch_size</c>). See <see cref="ReduceTargetScoresSum"/> for DDP.
    /// </summary>
    public double? LossBatchScale { get; init; }
}
