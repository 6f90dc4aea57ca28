namespace Osprey.Evaluation;

/// <summary>
/// Precision and recall per class at the confidence that maximises the smoothed mean F1, as Ultralytics
/// <c>ap_per_class</c> reports P and R (1000 confidence points, box-filter smoothing of fraction 0.1).
/// True positives are COCOeval's matches at IoU 0.50 over the kept (≤ maxDets) detections.
/// </summary>
internal static class UltralyticsOperatingPoint
{
    private const int Points = 1000;
    private const double Eps = 1e-16;

    public static (double[] Precision, double[] Recall) Compute(IReadOnlyList<ClassAccumulation> classes)
    {
        var x = CocoEvaluator.Linspace(0, 1, Points);
        int classCount = classes.Count;
        var precisionCurves = new double[classCount][];
        var recallCurves = new double[classCount][];
        var meanF1 = new double[Points];
        for (int k = 0; k < classCount; k++)
        {
            var c = classes[k];
            precisionCurves[k] = new double[Points];
            recallCurves[k] = new double[Points];
            int n = c.SortedScores.Length;
            if (n > 0)
            {
                var negConf = new double[n];
                var recall = new double[n];
                var precision = new double[n];
                double tp = 0, fp = 0;
                for (int i = 0; i < n; i++)
                {
                    if (c.TruePositiveAt50[i]) tp++; else fp++;
                    negConf[i] = -c.SortedScores[i];
                    recall[i] = tp / (c.GtCount + Eps);
                    precision[i] = tp / (tp + fp);
                }
                for (int j = 0; j < Points; j++)
                {
                    recallCurves[k][j] = Interp(-x[j], negConf, recall, left: 0);
                    precisionCurves[k][j] = Interp(-x[j], negConf, precision, left: 1);
                }
            }
            for (int j = 0; j < Points; j++)
            {
                double p = precisionCurves[k][j], r = recallCurves[k][j];
                meanF1[j] += 2 * p * r / (p + r + Eps) / classCount;
            }
        }
        int best = ArgMax(Smooth(meanF1, 0.1));
        return (precisionCurves.Select(curve => curve[best]).ToArray(), recallCurves.Select(curve => curve[best]).ToArray());
    }

    /// <summary>numpy.interp with increasing xp (right = last fp).</summary>
    internal static double Interp(double value, double[] xp, double[] fp, double left)
    {
        int n = xp.Length;
        if (value < xp[0]) return left;
        if (value >= xp[n - 1]) return fp[n - 1];
        // j = last index with xp[j] ≤ value (j < n − 1 here).
        int low = 0, high = n;
        while (low < high)
        {
            int mid = (low + high) >>> 1;
            if (xp[mid] <= value) low = mid + 1; else high = mid;
        }
        int j = low - 1;
        if (xp[j] == value) return fp[j];
        double slope = (fp[j + 1] - fp[j]) / (xp[j + 1] - xp[j]);
        return slope * (value - xp[j]) + fp[j];
    }

    /// <summary>Ultralytics <c>smooth</c>: box filter of odd width round(len·f·2)//2 + 1, edge-padded.</summary>
    internal static double[] Smooth(double[] y, double fraction)
    {
        int width = (int)Math.Round(y.Length * fraction * 2) / 2 + 1;
        int half = width / 2;
        var result = new double[y.Length];
        for (int i = 0; i < y.Length; i++)
        {
            double sum = 0;
            for (int m = -half; m <= half; m++) sum += y[Math.Clamp(i + m, 0, y.Length - 1)];
            result[i] = sum / width;
        }
        return result;
    }

    private static int ArgMax(double[] values)
    {
        int best = 0;
        for (int i = 1; i < values.Length; i++) if (values[i] > values[best]) best = i;
        return best;
    }
}
