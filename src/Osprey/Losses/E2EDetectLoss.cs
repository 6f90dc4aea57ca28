using static TorchSharp.torch;

namespace Osprey.Losses;

/// <summary>
/// Ultralytics' <c>E2EDetectLoss</c> (YOLOv10, ultralytics/utils/loss.py): the v8 loss with the task-aligned assigner's
/// top-k 10 on the one-to-many maps plus the v8 loss with top-k 1 on the one-to-one maps. The totals add (each already
/// × its batch: <c>loss_one2many[0] + loss_one2one[0]</c>) and so do the detached items (<c>[1] + [1]</c>), so the
/// logged box, cls and dfl are the sums of both branches. Each branch divides by its own target-score sum; under data
/// parallel each is summed over the ranks (<see cref="DetectionLossOptions.GlobalSum"/> is called once per branch,
/// one-to-many first), as one process over the global batch would.
/// </summary>
public sealed class E2EDetectLoss : IDetectionLoss
{
    private readonly DetectionLoss oneToMany;
    private readonly DetectionLoss oneToOne;

    /// <summary>Creates both losses; the one-to-many takes <paramref name="options"/> as given (<c>TopK</c> 10), the
    /// one-to-one the same with <c>TopK</c> 1.</summary>
    public E2EDetectLoss(DetectionLossOptions options)
    {
        Options = options;
        oneToMany = new DetectionLoss(options);
        oneToOne = new DetectionLoss(options with { TopK = 1 });
    }

    /// <inheritdoc/>
    public DetectionLossOptions Options { get; }

    /// <summary>The one-to-many branch's loss (assigner top-k 10).</summary>
    public DetectionLoss OneToMany => oneToMany;

    /// <summary>The one-to-one branch's loss (assigner top-k 1).</summary>
    public DetectionLoss OneToOne => oneToOne;

    /// <summary>Loss of one batch.</summary>
    /// <param name="maps">2·L maps (L = <see cref="DetectionLossOptions.Strides"/>' count): the one-to-many maps of
    /// every level, then the one-to-one maps (<see cref="Models.Heads.V10Detect"/>'s training output).</param>
    /// <param name="targets">Collated ground truth.</param>
    public DetectionLossResult Compute(IReadOnlyList<Tensor> maps, DetectionTargets targets)
    {
        int levels = Options.Strides.Count;
        if (maps.Count != 2 * levels)
            throw new ArgumentException($"E2EDetectLoss takes {2 * levels} maps (one-to-many, then one-to-one), got {maps.Count}.", nameof(maps));
        using var scope = NewDisposeScope();
        using var many = oneToMany.Compute(maps.Take(levels).ToArray(), targets);
        using var one = oneToOne.Compute(maps.Skip(levels).ToArray(), targets);
        var total = many.Total + one.Total;                                  // () both × batch
        var items = many.Items + one.Items;                                  // (3) box, cls, dfl
        return new DetectionLossResult(total.MoveToOuterDisposeScope(), items.MoveToOuterDisposeScope());
    }

    /// <inheritdoc/>
    public void WithoutBatch(Device device)
    {
        oneToMany.WithoutBatch(device);
        oneToOne.WithoutBatch(device);
    }
}
