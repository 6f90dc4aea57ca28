using static TorchSharp.torch;

namespace Osprey.Evaluation;

/// <summary>
/// Ultralytics detection confusion matrix: (nc + 1) × (nc + 1) counts indexed [predicted, actual], the last row and
/// column being background. Detections with conf ≤ <see cref="Confidence"/> are dropped; a gt and a detection pair
/// up when their IoU &gt; <see cref="IouThreshold"/>, greedily by IoU (one detection per gt and vice versa).
/// </summary>
public sealed class ConfusionMatrix
{
    private readonly long[,] _counts;

    /// <summary>Creates an empty matrix.</summary>
    public ConfusionMatrix(int numClasses, double confidence = 0.25, double iouThreshold = 0.45)
    {
        NumClasses = numClasses;
        Confidence = confidence;
        IouThreshold = iouThreshold;
        _counts = new long[numClasses + 1, numClasses + 1];
    }

    /// <summary>Number of classes; index nc is background.</summary>
    public int NumClasses { get; }
    /// <summary>Detection confidence threshold (0.25).</summary>
    public double Confidence { get; }
    /// <summary>Matching IoU threshold (0.45).</summary>
    public double IouThreshold { get; }

    /// <summary>Count of detections predicted as <paramref name="predicted"/> whose truth is <paramref name="actual"/>
    /// (either may be <see cref="NumClasses"/> = background).</summary>
    public long this[int predicted, int actual] => _counts[predicted, actual];

    /// <summary>A copy of the counts, [predicted, actual].</summary>
    public long[,] ToArray() => (long[,])_counts.Clone();

    /// <summary>Adds another matrix (e.g. another rank's).</summary>
    public void Merge(ConfusionMatrix other)
    {
        if (other.NumClasses != NumClasses) throw new ArgumentException("Class counts differ.", nameof(other));
        for (int p = 0; p <= NumClasses; p++)
            for (int a = 0; a <= NumClasses; a++)
                _counts[p, a] += other._counts[p, a];
    }

    /// <summary>Per class (true positives, false positives) as Ultralytics <c>tp_fp</c>: diagonal and row sum − diagonal.</summary>
    public (long[] TruePositives, long[] FalsePositives) TruePositivesAndFalsePositives()
    {
        var tp = new long[NumClasses];
        var fp = new long[NumClasses];
        for (int c = 0; c < NumClasses; c++)
        {
            tp[c] = _counts[c, c];
            long row = 0;
            for (int a = 0; a <= NumClasses; a++) row += _counts[c, a];
            fp[c] = row - tp[c];
        }
        return (tp, fp);
    }

    /// <summary>Adds one image from tensors: predictions (n, 6) [x1, y1, x2, y2, conf, cls], gt boxes (m, 4) xyxy, gt classes (m).</summary>
    public void Process(Tensor predictions, Tensor gtBoxes, Tensor gtClasses)
    {
        var p = Osprey.Runtime.HostCopy.Floats(predictions);
        var g = Osprey.Runtime.HostCopy.Floats(gtBoxes);
        var c = Osprey.Runtime.HostCopy.Floats(gtClasses);
        Process(
            Enumerable.Range(0, p.Length / 6).Select(i => new Detection(p[6 * i], p[6 * i + 1], p[6 * i + 2], p[6 * i + 3], p[6 * i + 4], (int)p[6 * i + 5])).ToArray(),
            Enumerable.Range(0, c.Length).Select(i => new GroundTruth(g[4 * i], g[4 * i + 1], g[4 * i + 2], g[4 * i + 3], (int)c[i])).ToArray());
    }

    /// <summary>Adds one image.</summary>
    public void Process(IReadOnlyList<Detection> detections, IReadOnlyList<GroundTruth> groundTruths)
    {
        var kept = detections.Where(d => d.Score > Confidence).ToArray();
        int background = NumClasses;
        if (groundTruths.Count == 0)
        {
            foreach (var d in kept) _counts[d.Class, background]++;   // false positives
            return;
        }

        // Candidate pairs (gt, detection, IoU) with IoU > threshold (box_iou in float32, eps 1e-7).
        var pairs = new List<(int Gt, int Detection, float Iou)>();
        for (int g = 0; g < groundTruths.Count; g++)
            for (int d = 0; d < kept.Length; d++)
            {
                float iou = Iou(groundTruths[g], kept[d]);
                if (iou > IouThreshold) pairs.Add((g, d, iou));
            }
        // Highest IoU first; keep the best pair per detection, then the best remaining pair per gt.
        var byDetection = pairs.OrderByDescending(m => m.Iou).GroupBy(m => m.Detection).Select(group => group.First());
        var matches = byDetection.OrderByDescending(m => m.Iou).GroupBy(m => m.Gt).Select(group => group.First()).ToArray();

        var detectionOfGt = matches.ToDictionary(m => m.Gt, m => m.Detection);
        for (int g = 0; g < groundTruths.Count; g++)
        {
            if (detectionOfGt.TryGetValue(g, out int d)) _counts[kept[d].Class, groundTruths[g].Class]++; // correct / confused
            else _counts[background, groundTruths[g].Class]++;                                          // missed gt
        }
        var matchedDetections = matches.Select(m => m.Detection).ToHashSet();
        for (int d = 0; d < kept.Length; d++)
            if (!matchedDetections.Contains(d)) _counts[kept[d].Class, background]++;                   // background FP
    }

    private static float Iou(GroundTruth truth, Detection detection)
    {
        float w = MathF.Max(0f, MathF.Min((float)truth.X2, (float)detection.X2) - MathF.Max((float)truth.X1, (float)detection.X1));
        float h = MathF.Max(0f, MathF.Min((float)truth.Y2, (float)detection.Y2) - MathF.Max((float)truth.Y1, (float)detection.Y1));
        float inter = w * h;
        float areaTruth = (float)((truth.X2 - truth.X1) * (truth.Y2 - truth.Y1));
        float areaDetection = (float)((detection.X2 - detection.X1) * (detection.Y2 - detection.Y1));
        return inter / (areaTruth + areaDetection - inter + 1e-7f);
    }
}
