using Osprey.Runtime;
using static TorchSharp.torch;

namespace Osprey.Losses;

/// <summary>What <see cref="TaskAlignedAssigner.Assign"/> hands back; dispose to free the tensors.</summary>
/// <param name="TargetLabels">shape(b, A) int64 class of the assigned gt (gt 0's class where not foreground).</param>
/// <param name="TargetBboxes">shape(b, A, 4) xyxy of the assigned gt, in the units of the gt boxes.</param>
/// <param name="TargetScores">shape(b, A, nc) one-hot × normalised alignment metric (0 on background).</param>
/// <param name="FgMask">shape(b, A) bool, anchors that received a gt.</param>
/// <param name="TargetGtIndex">shape(b, A) int64 index of the assigned gt in the padded gt list.</param>
public sealed record AssignerResult(Tensor TargetLabels, Tensor TargetBboxes, Tensor TargetScores, Tensor FgMask,
    Tensor TargetGtIndex) : IDisposable
{
    /// <inheritdoc />
    public void Dispose()
    {
        TargetLabels.Dispose();
        TargetBboxes.Dispose();
        TargetScores.Dispose();
        FgMask.Dispose();
        TargetGtIndex.Dispose();
    }
}

/// <summary>
/// Ultralytics' <c>TaskAlignedAssigner</c> (TOOD): picks, for every gt, the top-k anchors inside it by
/// align metric = score^α · CIoU^β, resolves anchors claimed by several gts by highest IoU and builds soft
/// class targets normalised per gt. No gradient flows through it.
/// </summary>
public sealed class TaskAlignedAssigner
{
    /// <summary>Creates an assigner with Ultralytics' YOLOv8 defaults (top-k 10, α 0.5, β 6).</summary>
    public TaskAlignedAssigner(int numClasses, int topK = 10, double alpha = 0.5, double beta = 6.0, double eps = 1e-9)
    {
        NumClasses = numClasses;
        TopK = topK;
        Alpha = alpha;
        Beta = beta;
        Eps = eps;
    }

    /// <summary>Number of classes.</summary>
    public int NumClasses { get; }
    /// <summary>Candidates kept per gt.</summary>
    public int TopK { get; }
    /// <summary>Exponent of the classification score in the align metric.</summary>
    public double Alpha { get; }
    /// <summary>Exponent of the IoU in the align metric.</summary>
    public double Beta { get; }
    /// <summary>Small constant of the normalisation (1e-9).</summary>
    public double Eps { get; }

    /// <summary>Assigns gts to anchors.</summary>
    /// <param name="predScores">shape(b, A, nc) sigmoid class scores.</param>
    /// <param name="predBboxes">shape(b, A, 4) predicted xyxy boxes (same units as the gts).</param>
    /// <param name="anchorPoints">shape(A, 2) anchor centres (same units as the gts).</param>
    /// <param name="gtLabels">shape(b, n, 1) gt classes.</param>
    /// <param name="gtBboxes">shape(b, n, 4) gt xyxy boxes, padded with zeros.</param>
    /// <param name="maskGt">shape(b, n, 1) 1 for real gts, 0 for padding.</param>
    public AssignerResult Assign(Tensor predScores, Tensor predBboxes, Tensor anchorPoints, Tensor gtLabels,
        Tensor gtBboxes, Tensor maskGt)
    {
        using var noGrad = no_grad();
        using var scope = NewDisposeScope();
        long batch = predScores.shape[0], numAnchors = predScores.shape[1], maxBoxes = gtBboxes.shape[1];
        if (maxBoxes == 0)
        {
            return Survive(new AssignerResult(
                full(new[] { batch, numAnchors }, Scalars.Int(NumClasses), dtype: ScalarType.Int64, device: predScores.device),
                zeros_like(predBboxes),
                zeros_like(predScores),
                zeros(new[] { batch, numAnchors }, dtype: ScalarType.Bool, device: predScores.device),
                zeros(new[] { batch, numAnchors }, dtype: ScalarType.Int64, device: predScores.device)));
        }

        var maskGtBool = maskGt.to_type(ScalarType.Bool);                                // (b, n, 1)
        var maskInGts = SelectCandidatesInGts(anchorPoints, gtBboxes);                  // (b, n, A) bool
        var maskCandidate = maskInGts.logical_and(maskGtBool);                          // (b, n, A)
        var (alignMetric, overlaps) = BoxMetrics(predScores, predBboxes, gtLabels, gtBboxes, maskCandidate);
        var maskTopK = SelectTopKCandidates(alignMetric, maskGtBool.expand(-1, -1, Math.Min(TopK, numAnchors)));
        var maskPos = maskTopK * maskCandidate.to_type(alignMetric.dtype);              // (b, n, A)

        var (targetGtIndex, fgMask, resolvedMaskPos) = SelectHighestOverlaps(maskPos, overlaps, maxBoxes);
        var (targetLabels, targetBboxes, targetScores) = Targets(gtLabels, gtBboxes, targetGtIndex, fgMask);

        alignMetric = alignMetric * resolvedMaskPos;                                     // (b, n, A)
        var posAlignMetrics = alignMetric.amax(new long[] { -1 }, keepdim: true);       // (b, n, 1)
        var posOverlaps = (overlaps * resolvedMaskPos).amax(new long[] { -1 }, keepdim: true); // (b, n, 1)
        var normAlignMetric = (alignMetric * posOverlaps / posAlignMetrics.Plus(Scalars.Of(Eps)))
            .amax(new long[] { -2 }).unsqueeze(-1);                                      // (b, A, 1)
        targetScores = targetScores * normAlignMetric;                                  // (b, A, nc)

        return Survive(new AssignerResult(targetLabels, targetBboxes, targetScores, fgMask.gt(Scalars.Int(0)), targetGtIndex));
    }

    private static AssignerResult Survive(AssignerResult result)
    {
        result.TargetLabels.MoveToOuterDisposeScope();
        result.TargetBboxes.MoveToOuterDisposeScope();
        result.TargetScores.MoveToOuterDisposeScope();
        result.FgMask.MoveToOuterDisposeScope();
        result.TargetGtIndex.MoveToOuterDisposeScope();
        return result;
    }

    /// <summary>
    /// Anchors whose centre lies strictly inside a gt: min(x − x1, y − y1, x2 − x, y2 − y) &gt; eps.
    /// </summary>
    /// <param name="anchorPoints">shape(A, 2).</param>
    /// <param name="gtBboxes">shape(b, n, 4) xyxy.</param>
    /// <returns>shape(b, n, A) bool.</returns>
    public static Tensor SelectCandidatesInGts(Tensor anchorPoints, Tensor gtBboxes, double eps = 1e-9)
    {
        using var scope = NewDisposeScope();
        long numAnchors = anchorPoints.shape[0];
        long batch = gtBboxes.shape[0], maxBoxes = gtBboxes.shape[1];
        var corners = gtBboxes.view(-1, 1, 4).chunk(2, 2);                                // 2 × (b·n, 1, 2)
        var deltas = cat(new[] { anchorPoints.unsqueeze(0) - corners[0], corners[1] - anchorPoints.unsqueeze(0) }, 2)
            .view(batch, maxBoxes, numAnchors, -1);                                       // (b, n, A, 4)
        return deltas.amin(new long[] { 3 }).gt(Scalars.Of(eps)).MoveToOuterDisposeScope();
    }

    /// <summary>Align metric and CIoU (clamped ≥ 0) of every (gt, anchor) candidate; 0 elsewhere.</summary>
    private (Tensor AlignMetric, Tensor Overlaps) BoxMetrics(Tensor predScores, Tensor predBboxes, Tensor gtLabels,
        Tensor gtBboxes, Tensor maskCandidate)
    {
        long numAnchors = predBboxes.shape[1];
        var classIndex = gtLabels.to_type(ScalarType.Int64).clamp_min(Scalars.Int(0)).expand(-1, -1, numAnchors); // (b, n, A)
        var boxScores = predScores.permute(0, 2, 1).gather(1, classIndex)                  // (b, n, A)
            .masked_fill(maskCandidate.logical_not(), Scalars.Int(0));
        var gtExpanded = gtBboxes.unsqueeze(2);                                             // (b, n, 1, 4)
        var predExpanded = predBboxes.unsqueeze(1);                                         // (b, 1, A, 4)
        var overlaps = BoxOps.Iou(gtExpanded, predExpanded, IouKind.CIoU, xywh: false)
            .squeeze(-1).clamp_min(Scalars.Int(0))                                          // (b, n, A)
            .masked_fill(maskCandidate.logical_not(), Scalars.Int(0));
        var alignMetric = boxScores.pow(Scalars.Of(Alpha)) * overlaps.pow(Scalars.Of(Beta));                        // (b, n, A)
        return (alignMetric, overlaps);
    }

    /// <summary>1 at the top-k anchors of each real gt (ties resolved as torch.topk), 0 elsewhere.</summary>
    /// <param name="metrics">shape(b, n, A).</param>
    /// <param name="topKMask">shape(b, n, k) bool, false for padded gts.</param>
    private static Tensor SelectTopKCandidates(Tensor metrics, Tensor topKMask)
    {
        long k = topKMask.shape[2];
        var (_, topKIndices) = metrics.topk((int)k, dim: -1, largest: true);              // (b, n, k)
        topKIndices = topKIndices.masked_fill(topKMask.logical_not(), Scalars.Int(0));
        var counts = zeros(metrics.shape, dtype: ScalarType.Int32, device: metrics.device); // (b, n, A)
        counts.scatter_add_(-1, topKIndices, ones_like(topKIndices, dtype: ScalarType.Int32));
        counts = counts.masked_fill(counts.gt(Scalars.IntOne), Scalars.Int(0));                                       // padded gts → all 0
        return counts.to_type(metrics.dtype);
    }

    /// <summary>An anchor claimed by several gts goes to the gt with the highest IoU.</summary>
    /// <param name="maskPos">shape(b, n, A).</param>
    /// <param name="overlaps">shape(b, n, A).</param>
    /// <returns>target gt index (b, A), foreground count (b, A), resolved mask (b, n, A).</returns>
    public static (Tensor TargetGtIndex, Tensor FgCount, Tensor MaskPos) SelectHighestOverlaps(Tensor maskPos,
        Tensor overlaps, long maxBoxes)
    {
        var fgCount = maskPos.sum(-2);                                                      // (b, A)
        if (fgCount.numel() > 0 && fgCount.max().item<float>() > 1)
        {
            var maskMultiGts = fgCount.unsqueeze(1).gt(Scalars.IntOne).expand(-1, maxBoxes, -1);         // (b, n, A)
            var maxOverlapsIndex = overlaps.argmax(1);                                      // (b, A)
            var winnerIndex = maxOverlapsIndex.unsqueeze(1);                               // (b, 1, A)
            var isMaxOverlaps = zeros_like(maskPos)
                .scatter_(1, winnerIndex, ones_like(winnerIndex, dtype: maskPos.dtype));     // (b, n, A)
            maskPos = where(maskMultiGts, isMaxOverlaps, maskPos);
            fgCount = maskPos.sum(-2);
        }
        var targetGtIndex = maskPos.argmax(-2);                                             // (b, A)
        return (targetGtIndex, fgCount, maskPos);
    }

    /// <summary>Gathers labels, boxes and one-hot scores of the assigned gts.</summary>
    private (Tensor Labels, Tensor Bboxes, Tensor Scores) Targets(Tensor gtLabels, Tensor gtBboxes,
        Tensor targetGtIndex, Tensor fgCount)
    {
        long batch = gtBboxes.shape[0], maxBoxes = gtBboxes.shape[1];
        var batchOffset = arange(batch, dtype: ScalarType.Int64, device: gtLabels.device).unsqueeze(-1).mul(Scalars.Int(maxBoxes)); // (b, 1)
        var flatIndex = targetGtIndex.Plus(batchOffset);                                       // (b, A)
        var labels = gtLabels.to_type(ScalarType.Int64).flatten()[flatIndex].clamp_min(Scalars.Int(0)); // (b, A)
        var bboxes = gtBboxes.view(-1, gtBboxes.shape[^1])[flatIndex];                      // (b, A, 4)
        var scores = zeros(new[] { labels.shape[0], labels.shape[1], NumClasses }, dtype: gtBboxes.dtype,
            device: gtBboxes.device)
            .scatter_(2, labels.unsqueeze(-1), ones_like(labels.unsqueeze(-1), dtype: gtBboxes.dtype)); // (b, A, nc)
        scores = scores.masked_fill(fgCount.unsqueeze(-1).le(Scalars.Int(0)), Scalars.Int(0));
        return (labels, bboxes, scores);
    }
}
