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
    /// Sums the loss normaliser over the data-parallel ranks (<c>DataParallel.SumOverRanks</c>); null: one process.
    /// <para>
    /// The three loss terms are sums over the batch divided by <c>target_scores_sum</c> = max(Σ target scores, 1). Called
    /// with this process's raw Σ target scores (a detached scalar tensor on the loss device), it returns the sum over the
    /// whole global batch, so that every rank divides by the same number; then Σ over ranks of each rank's
    /// <see cref="DetectionLossResult.Items"/> equals the one-process items, and the rank's
    /// <see cref="DetectionLossResult.Total"/> (× local batch, as Ultralytics' <c>loss.sum() * batch_size</c>) times W²
    /// has, averaged over W ranks, the one-process gradient (<c>Replica.ScaleLoss</c>).
    /// </para>
    /// </summary>
    public Func<Tensor, Tensor>? GlobalSum { get; init; }
}
