using Osprey.Models;
using Osprey.Runtime;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace Osprey.Losses;

/// <summary>
/// Ultralytics <c>v8DetectionLoss</c>: task-aligned assignment, BCE class loss, CIoU box loss and distribution
/// focal loss, each divided by <c>target_scores_sum</c> and weighted by the box/cls/dfl gains.
/// </summary>
public sealed class DetectionLoss : IDetectionLoss
{
    private readonly TaskAlignedAssigner _assigner;

    /// <summary>Creates the loss.</summary>
    public DetectionLoss(DetectionLossOptions options)
    {
        if (options.NumClasses < 1) throw new ArgumentOutOfRangeException(nameof(options), "NumClasses must be ≥ 1.");
        if (options.RegMax < 2) throw new ArgumentOutOfRangeException(nameof(options), "RegMax must be ≥ 2 (DFL).");
        Options = options;
        _assigner = new TaskAlignedAssigner(options.NumClasses, options.TopK, alpha: 0.5, beta: 6.0);
    }

    /// <summary>The settings.</summary>
    public DetectionLossOptions Options { get; }

    /// <summary>Channels per anchor: nc + 4·regMax.</summary>
    public int OutputsPerAnchor => Options.NumClasses + 4 * Options.RegMax;

    /// <summary>Loss of one batch.</summary>
    /// <param name="features">Training outputs of the head, each shape(b, nc + 4·regMax, h, w), strides as
    /// <see cref="DetectionLossOptions.Strides"/>; channels [0, 4·regMax) box bins, then class logits.</param>
    /// <param name="targets">Collated ground truth (normalised centre-xywh).</param>
    public DetectionLossResult Compute(IReadOnlyList<Tensor> features, DetectionTargets targets)
    {
        using var scope = NewDisposeScope();
        int regMax = Options.RegMax, numClasses = Options.NumClasses;
        long batchSize = features[0].shape[0];
        var device = features[0].device;

        var flat = cat(features.Select(f => f.view(batchSize, OutputsPerAnchor, f.shape[2] * f.shape[3])).ToArray(), 2); // (b, no, A); b may be 0
        var parts = flat.split(new long[] { 4L * regMax, numClasses }, 1);
        var predDist = parts[0].permute(0, 2, 1).contiguous();                                      // (b, A, 4·regMax)
        var predScores = parts[1].permute(0, 2, 1).contiguous();                                    // (b, A, nc)
        var dtype = predScores.dtype;

        float imageHeight = features[0].shape[2] * Options.Strides[0];
        float imageWidth = features[0].shape[3] * Options.Strides[0];
        var (anchorPoints, strideTensor) = Anchors.Make(features, Options.Strides, 0.5f);           // (A, 2), (A, 1)

        var gt = Preprocess(targets, batchSize, imageWidth, imageHeight, device);                   // (b, n, 5)
        var gtLabels = gt.narrow(2, 0, 1);                                                          // (b, n, 1)
        var gtBboxes = gt.narrow(2, 1, 4);                                                          // (b, n, 4) xyxy px
        var maskGt = gtBboxes.sum(new long[] { 2 }, keepdim: true).gt(Scalars.Int(0));                          // (b, n, 1)

        var predBboxes = Anchors.DistToBox(DistributionFocalLoss.Expectation(predDist, regMax),
            anchorPoints, xywh: false);                                                             // (b, A, 4) grid
        using var assigned = _assigner.Assign(
            predScores.detach().sigmoid(),
            (predBboxes.detach() * strideTensor).to_type(gtBboxes.dtype),
            anchorPoints * strideTensor,
            gtLabels, gtBboxes, maskGt);

        var targetScores = assigned.TargetScores.to_type(dtype);                                   // (b, A, nc)
        var localScoreSum = targetScores.sum().detach();
        var scoreSum = (Options.GlobalSum?.Invoke(localScoreSum) ?? localScoreSum).clamp_min(Scalars.IntOne); // ()

        var lossCls = F.binary_cross_entropy_with_logits(predScores, targetScores, reduction: nn.Reduction.None)
            .sum() / scoreSum;
        Tensor lossBox, lossDfl;
        var fgMask = assigned.FgMask;                                                               // (b, A)
        if (fgMask.any().item<bool>())
        {
            var targetBboxes = assigned.TargetBboxes / strideTensor;                               // (b, A, 4) grid
            (lossBox, lossDfl) = BoxLosses(predDist, predBboxes, anchorPoints, targetBboxes, targetScores,
                scoreSum, fgMask);
        }
        else
        {
            lossBox = zeros(Array.Empty<long>(), dtype: dtype, device: device);
            lossDfl = zeros(Array.Empty<long>(), dtype: dtype, device: device);
        }

        var items = stack(new[] { lossBox.mul(Scalars.Of(Options.BoxGain)), lossCls.mul(Scalars.Of(Options.ClsGain)), lossDfl.mul(Scalars.Of(Options.DflGain)) }); // (3)
        var total = items.sum().mul(Scalars.Of((double)batchSize));
        return new DetectionLossResult(total.MoveToOuterDisposeScope(), items.detach().MoveToOuterDisposeScope());
    }

    /// <summary>
    /// Data parallel: a rank that has no batch in this global batch (the last batch of a shorter validation shard) still
    /// takes part in the normaliser's sum over the ranks, with zero.
    /// </summary>
    public void WithoutBatch(Device device)
    {
        if (Options.GlobalSum is null) return;
        using var scope = NewDisposeScope();
        Options.GlobalSum(zeros(Array.Empty<long>(), device: device));
    }

    /// <summary>CIoU loss and DFL over the foreground anchors, weighted by each anchor's target score sum.</summary>
    private (Tensor Box, Tensor Dfl) BoxLosses(Tensor predDist, Tensor predBboxes, Tensor anchorPoints,
        Tensor targetBboxes, Tensor targetScores, Tensor scoreSum, Tensor fgMask)
    {
        int regMax = Options.RegMax;
        var weight = targetScores.sum(-1)[fgMask].unsqueeze(-1);                                   // (P, 1)
        var iou = BoxOps.Iou(predBboxes[fgMask], targetBboxes[fgMask], IouKind.CIoU, xywh: false); // (P, 1)
        var lossBox = (Scalars.One.From(iou) * weight).sum() / scoreSum;

        var targetDist = Anchors.BoxToDist(anchorPoints, targetBboxes, regMax - 1);                 // (b, A, 4)
        var lossDfl = (DistributionFocalLoss.Loss(predDist[fgMask].view(-1, regMax), targetDist[fgMask], regMax)
                       * weight).sum() / scoreSum;                                                  // ()
        return (lossBox, lossDfl);
    }

    /// <summary>
    /// Ultralytics <c>preprocess</c>: per image, the rows [cls, x1, y1, x2, y2] in input pixels, padded with zeros
    /// to the largest object count of the batch.
    /// </summary>
    /// <returns>shape(b, n_max, 5).</returns>
    public static Tensor Preprocess(DetectionTargets targets, long batchSize, float imageWidth, float imageHeight,
        Device device)
    {
        using var scope = NewDisposeScope();
        long count = targets.BatchIndex.shape[0];
        if (count == 0)
            return zeros(new[] { batchSize, 0L, 5L }, device: device).MoveToOuterDisposeScope();

        var imageIndex = targets.BatchIndex.to(device).to_type(ScalarType.Int64).view(-1);           // (N)
        var rows = cat(new[]
        {
            targets.Classes.to(device).to_type(ScalarType.Float32).view(-1, 1),
            targets.Boxes.to(device).to_type(ScalarType.Float32).view(-1, 4),
        }, 1);                                                                                      // (N, 5)
        var counts = imageIndex.bincount(null, batchSize);                                // (b)
        long maxCount = counts.max().item<long>();                                        // the one host sync (Ultralytics' too)
        var padded = zeros(new[] { batchSize, maxCount, 5L }, device: device);                      // (b, n, 5)
        // Each row goes to its image at its rank among that image's rows, in the given order (what Ultralytics' loop
        // over images with a boolean mask each does), in one scatter: no host sync per image.
        var position = nn.functional.one_hot(imageIndex, batchSize).cumsum(0)
            .gather(1, imageIndex.unsqueeze(1)).squeeze(1).Minus(ones(1, dtype: ScalarType.Int64, device: device)); // (N)
        padded.index_put_(rows, imageIndex, position);
        // (4) W, H, W, H made on the device (a tensor from host values would be a blocking copy on CUDA)
        var scale = full(new[] { 4L }, Scalars.Of(imageWidth), dtype: ScalarType.Float32, device: device);
        scale.narrow(0, 1, 1).fill_(Scalars.Of(imageHeight));
        scale.narrow(0, 3, 1).fill_(Scalars.Of(imageHeight));
        var boxes = BoxOps.XywhToXyxy(padded.narrow(2, 1, 4) * scale);                             // (b, n, 4)
        return cat(new[] { padded.narrow(2, 0, 1), boxes }, 2).MoveToOuterDisposeScope();
    }
}
