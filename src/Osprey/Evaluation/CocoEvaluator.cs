using static TorchSharp.torch;

namespace Osprey.Evaluation;

/// <summary>
/// Streaming bounding-box mAP with pycocotools COCOeval semantics (iouType 'bbox', area 'all', maxDets 100, no crowd):
/// feed each image with <see cref="Update(long, IReadOnlyList{Detection}, IReadOnlyList{GroundTruth})"/>, then
/// <see cref="Compute"/>. The per-image state (<see cref="Records"/>) is plain data and merges exactly: ranks
/// that evaluate disjoint images can gather their records into one evaluator (<see cref="Merge"/>) and obtain
/// the single-process result, since images are always accumulated in ascending id order as COCOeval does.
/// </summary>
public sealed class CocoEvaluator
{
    private readonly SortedDictionary<long, ImageRecord> _images = new();

    /// <summary>Creates an evaluator.</summary>
    /// <param name="maxDetections">COCOeval maxDets (100): detections kept per image and class.</param>
    public CocoEvaluator(int maxDetections = 100) => MaxDetections = maxDetections;

    /// <summary>Detections kept per (image, class).</summary>
    public int MaxDetections { get; }

    /// <summary>COCOeval iouThrs: numpy linspace(0.5, 0.95, 10).</summary>
    public static IReadOnlyList<double> IouThresholds { get; } = Linspace(0.5, 0.95, 10);

    /// <summary>COCOeval recThrs: numpy linspace(0, 1, 101).</summary>
    public static IReadOnlyList<double> RecallThresholds { get; } = Linspace(0.0, 1.0, 101);

    /// <summary>The per-image records so far, by ascending image id.</summary>
    public IReadOnlyCollection<ImageRecord> Records => _images.Values;

    /// <summary>numpy.linspace(start, stop, num): i·step + start, last element exactly stop.</summary>
    internal static double[] Linspace(double start, double stop, int count)
    {
        double step = (stop - start) / (count - 1);
        var values = new double[count];
        for (int i = 0; i < count; i++) values[i] = i * step + start;
        values[^1] = stop;
        return values;
    }

    /// <summary>Adds one image (pixels of the same image for detections and gts).</summary>
    /// <param name="imageId">Unique, globally consistent id (e.g. the dataset index); sets accumulation order.</param>
    public void Update(long imageId, IReadOnlyList<Detection> detections, IReadOnlyList<GroundTruth> groundTruths)
        => Add(Evaluate(imageId, detections, groundTruths, MaxDetections));

    /// <summary>Adds one image from tensors.</summary>
    /// <param name="imageId">Unique, globally consistent id.</param>
    /// <param name="predictions">shape(n, 6) [x1, y1, x2, y2, conf, cls] (NMS output, scaled to the gt pixels).</param>
    /// <param name="gtBoxes">shape(m, 4) xyxy.</param>
    /// <param name="gtClasses">shape(m) or (m, 1) class ids.</param>
    public void Update(long imageId, Tensor predictions, Tensor gtBoxes, Tensor gtClasses)
    {
        var p = Osprey.Runtime.HostCopy.Doubles(predictions);
        var g = Osprey.Runtime.HostCopy.Doubles(gtBoxes);
        var c = Osprey.Runtime.HostCopy.Doubles(gtClasses);
        var detections = new Detection[p.Length / 6];
        for (int i = 0; i < detections.Length; i++)
            detections[i] = new Detection(p[6 * i], p[6 * i + 1], p[6 * i + 2], p[6 * i + 3], p[6 * i + 4], (int)p[6 * i + 5]);
        var truths = new GroundTruth[c.Length];
        for (int i = 0; i < truths.Length; i++)
            truths[i] = new GroundTruth(g[4 * i], g[4 * i + 1], g[4 * i + 2], g[4 * i + 3], (int)c[i]);
        Update(imageId, detections, truths);
    }

    /// <summary>Adds a record made elsewhere (e.g. gathered from another rank).</summary>
    public void Add(ImageRecord record)
    {
        if (!_images.TryAdd(record.ImageId, record))
            throw new ArgumentException($"Image {record.ImageId} was already evaluated.", nameof(record));
    }

    /// <summary>Adds all records of another evaluator (disjoint image ids).</summary>
    public void Merge(CocoEvaluator other)
    {
        foreach (var record in other.Records) Add(record);
    }

    /// <summary>COCOeval <c>evaluateImg</c> for every class present in the image.</summary>
    public static ImageRecord Evaluate(long imageId, IReadOnlyList<Detection> detections,
        IReadOnlyList<GroundTruth> groundTruths, int maxDetections = 100)
    {
        var classes = detections.Select(d => d.Class).Concat(groundTruths.Select(g => g.Class)).Distinct().Order();
        var records = new List<ClassImageRecord>();
        foreach (int cls in classes)
        {
            // Stable descending sort by score (np.argsort(-score, kind='mergesort')), capped at maxDets.
            var dts = detections.Where(d => d.Class == cls).OrderByDescending(d => d.Score).Take(maxDetections).ToArray();
            var gts = groundTruths.Where(g => g.Class == cls).ToArray();
            records.Add(EvaluateClass(cls, dts, gts));
        }
        return new ImageRecord(imageId, records);
    }

    private static ClassImageRecord EvaluateClass(int cls, Detection[] dts, GroundTruth[] gts)
    {
        int thresholdCount = IouThresholds.Count;
        var ious = new double[dts.Length, gts.Length];
        for (int d = 0; d < dts.Length; d++)
            for (int g = 0; g < gts.Length; g++)
                ious[d, g] = CocoIou(dts[d], gts[g]);
        var matched = new bool[thresholdCount * dts.Length];
        for (int t = 0; t < thresholdCount; t++)
        {
            var gtMatched = new bool[gts.Length];
            for (int d = 0; d < dts.Length; d++)
            {
                // COCOeval: best still-unmatched gt with IoU ≥ threshold; a later gt with an equal IoU wins.
                // (The ignore/crowd break rules never fire: there are no ignored or crowd gts.)
                double best = Math.Min(IouThresholds[t], 1 - 1e-10);
                int match = -1;
                for (int g = 0; g < gts.Length; g++)
                {
                    if (gtMatched[g]) continue;
                    if (ious[d, g] < best) continue;
                    best = ious[d, g];
                    match = g;
                }
                if (match == -1) continue;
                matched[t * dts.Length + d] = true;
                gtMatched[match] = true;
            }
        }
        return new ClassImageRecord(cls, gts.Length, dts.Select(d => d.Score).ToArray(), matched);
    }

    /// <summary>pycocotools <c>bbIou</c> on xywh boxes (no crowd), in double.</summary>
    private static double CocoIou(Detection detection, GroundTruth truth)
    {
        double dx = detection.X1, dy = detection.Y1, dw = detection.X2 - detection.X1, dh = detection.Y2 - detection.Y1;
        double gx = truth.X1, gy = truth.Y1, gw = truth.X2 - truth.X1, gh = truth.Y2 - truth.Y1;
        double w = Math.Min(dx + dw, gx + gw) - Math.Max(dx, gx);
        if (w <= 0) return 0;
        double h = Math.Min(dy + dh, gy + gh) - Math.Max(dy, gy);
        if (h <= 0) return 0;
        double intersection = w * h;
        return intersection / (dw * dh + gw * gh - intersection);
    }

    /// <summary>COCOeval <c>accumulate</c> + <c>summarize</c>, plus Ultralytics' P/R at max mean F1.</summary>
    public DetectionMetrics Compute()
    {
        var perClass = new SortedDictionary<int, List<ClassImageRecord>>();
        foreach (var image in _images.Values) // ascending image id
            foreach (var record in image.Classes)
            {
                if (!perClass.TryGetValue(record.ClassId, out var list)) perClass[record.ClassId] = list = new();
                list.Add(record);
            }

        var accumulated = new List<ClassAccumulation>();
        foreach (var (cls, records) in perClass)
        {
            int gtCount = records.Sum(r => r.GtCount);
            if (gtCount == 0) continue; // COCOeval leaves −1: excluded from every mean
            accumulated.Add(Accumulate(cls, records, gtCount));
        }
        if (accumulated.Count == 0)
            return new DetectionMetrics(0, 0, 0, 0, Array.Empty<ClassMetrics>());

        var (precision, recall) = UltralyticsOperatingPoint.Compute(accumulated);
        var rows = accumulated.Select((a, k) => new ClassMetrics(a.ClassId, a.Images, a.GtCount, precision[k], recall[k],
            a.ApPerThreshold[0], a.ApPerThreshold.Average(), a.ApPerThreshold)).ToArray();
        return new DetectionMetrics(precision.Average(), recall.Average(), rows.Average(r => r.AP50),
            rows.Average(r => r.AP50To95), rows);
    }

    private static ClassAccumulation Accumulate(int cls, List<ClassImageRecord> records, int gtCount)
    {
        // Concatenate in image order, then stable sort by descending score (np.argsort(-scores, kind='mergesort')).
        var entries = new List<(double Score, ClassImageRecord Record, int Index)>();
        foreach (var r in records)
            for (int d = 0; d < r.Scores.Length; d++) entries.Add((r.Scores[d], r, d));
        var sorted = entries.OrderByDescending(e => e.Score).ToArray();
        int count = sorted.Length;
        int thresholdCount = IouThresholds.Count;
        var apPerThreshold = new double[thresholdCount];
        var truePositiveAt50 = new bool[count];
        for (int t = 0; t < thresholdCount; t++)
        {
            var precision = new double[count];
            var recall = new double[count];
            double tp = 0, fp = 0;
            for (int i = 0; i < count; i++)
            {
                var (_, record, index) = sorted[i];
                bool isMatch = record.Matched[t * record.Scores.Length + index];
                if (t == 0) truePositiveAt50[i] = isMatch;
                if (isMatch) tp++; else fp++;
                recall[i] = tp / gtCount;
                precision[i] = tp / (fp + tp + 2.220446049250313e-16); // np.spacing(1)
            }
            for (int i = count - 1; i > 0; i--)
                if (precision[i] > precision[i - 1]) precision[i - 1] = precision[i];
            double sum = 0;
            foreach (double threshold in RecallThresholds)
            {
                int index = SearchSortedLeft(recall, threshold);
                sum += index < count ? precision[index] : 0;
            }
            apPerThreshold[t] = sum / RecallThresholds.Count;
        }
        int images = records.Count(r => r.GtCount > 0);
        return new ClassAccumulation(cls, gtCount, images, apPerThreshold,
            sorted.Select(e => e.Score).ToArray(), truePositiveAt50);
    }

    /// <summary>numpy.searchsorted(sorted, value, side='left'): first index with sorted[i] ≥ value.</summary>
    internal static int SearchSortedLeft(double[] sorted, double value)
    {
        int low = 0, high = sorted.Length;
        while (low < high)
        {
            int mid = (low + high) >>> 1;
            if (sorted[mid] < value) low = mid + 1; else high = mid;
        }
        return low;
    }
}

/// <summary>One class after COCOeval accumulation.</summary>
internal sealed record ClassAccumulation(int ClassId, int GtCount, int Images, double[] ApPerThreshold,
    double[] SortedScores, bool[] TruePositiveAt50);
