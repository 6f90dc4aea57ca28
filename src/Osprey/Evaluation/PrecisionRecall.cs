namespace Osprey.Evaluation;

/// <summary>One class's precision–recall curve, sampled at <see cref="Recall"/> = linspace(0, 1, 1000).</summary>
/// <param name="ClassId">The class.</param>
/// <param name="Instances">Ground truths of the class.</param>
/// <param name="AP">COCOeval AP of the class at the curve's IoU threshold (the number Osprey reports).</param>
/// <param name="Recall">The 1000 recall sample points (shared by all classes).</param>
/// <param name="Precision">Precision envelope at each recall point.</param>
public sealed record PrecisionRecallCurve(int ClassId, int Instances, double AP, IReadOnlyList<double> Recall,
    IReadOnlyList<double> Precision);

/// <summary>
/// Precision–recall curves as Ultralytics draws PR_curve.png (<c>ap_per_class</c> / <c>compute_ap</c>): per class,
/// detections in descending score order (COCOeval's stable order over images by ascending id, capped at maxDets
/// per image and class) with their COCOeval match flag at the IoU threshold; recall = TP / (gts + 1e-16),
/// precision = TP / (TP + FP); the curve is padded as mrec = [0, recall…, 1], mpre = [1, precision…, 0], made
/// monotone (mpre[i] = max(mpre[i…])) and linearly interpolated (numpy.interp) at linspace(0, 1, 1000).
/// Classes with gts but no detections get an all-zero curve (their AP is 0); classes without gts are left out,
/// as in COCOeval's means.
/// </summary>
public static class PrecisionRecall
{
    /// <summary>Number of recall sample points (Ultralytics: 1000).</summary>
    public const int Points = 1000;

    /// <summary>The per-class curves (by class id) of the evaluator's images at IoU threshold <paramref name="iou"/>,
    /// which must be one of <see cref="CocoEvaluator.IouThresholds"/> (0.5, 0.55, …, 0.95).</summary>
    public static IReadOnlyList<PrecisionRecallCurve> PrecisionRecallCurves(this CocoEvaluator evaluator, double iou = 0.5)
    {
        int t = ThresholdIndex(iou);
        var metrics = evaluator.Compute();
        var apOfClass = metrics.Classes.ToDictionary(c => c.ClassId, c => c.ApPerThreshold[t]);

        var perClass = new SortedDictionary<int, List<ClassImageRecord>>();
        foreach (var image in evaluator.Records) // ascending image id
            foreach (var record in image.Classes)
            {
                if (!perClass.TryGetValue(record.ClassId, out var list)) perClass[record.ClassId] = list = new();
                list.Add(record);
            }

        var recall = CocoEvaluator.Linspace(0, 1, Points);
        var curves = new List<PrecisionRecallCurve>();
        foreach (var (cls, records) in perClass)
        {
            int gtCount = records.Sum(r => r.GtCount);
            if (gtCount == 0) continue;
            // Same order as COCOeval accumulate: concatenated by image, stable sort by descending score.
            var matches = records
                .SelectMany(r => r.Scores.Select((score, d) => (Score: score, Match: r.Matched[t * r.Scores.Length + d])))
                .OrderByDescending(e => e.Score)
                .Select(e => e.Match)
                .ToArray();
            curves.Add(new PrecisionRecallCurve(cls, gtCount, apOfClass.GetValueOrDefault(cls), recall,
                Sample(matches, gtCount, recall)));
        }
        return curves;
    }

    /// <summary>Ultralytics' curve for one class: <paramref name="truePositives"/> in descending score order,
    /// <paramref name="gtCount"/> gts, precision envelope sampled at <paramref name="recallPoints"/>.</summary>
    public static double[] Sample(IReadOnlyList<bool> truePositives, int gtCount, IReadOnlyList<double> recallPoints)
    {
        int n = truePositives.Count;
        var result = new double[recallPoints.Count];
        if (n == 0 || gtCount == 0) return result;
        var mrec = new double[n + 2];
        var mpre = new double[n + 2];
        mpre[0] = 1;
        mrec[n + 1] = 1;
        double tp = 0, fp = 0;
        for (int i = 0; i < n; i++)
        {
            if (truePositives[i]) tp++; else fp++;
            mrec[i + 1] = tp / (gtCount + 1e-16);
            mpre[i + 1] = tp / (tp + fp);
        }
        for (int i = n; i >= 0; i--) mpre[i] = Math.Max(mpre[i], mpre[i + 1]); // np.flip(np.maximum.accumulate(np.flip(mpre)))
        for (int j = 0; j < result.Length; j++)
            result[j] = UltralyticsOperatingPoint.Interp(recallPoints[j], mrec, mpre, left: mpre[0]);
        return result;
    }

    private static int ThresholdIndex(double iou)
    {
        for (int t = 0; t < CocoEvaluator.IouThresholds.Count; t++)
            if (Math.Abs(CocoEvaluator.IouThresholds[t] - iou) < 1e-9) return t;
        throw new ArgumentOutOfRangeException(nameof(iou), iou, "The IoU threshold must be one of COCOeval's 0.5, 0.55, …, 0.95.");
    }
}
