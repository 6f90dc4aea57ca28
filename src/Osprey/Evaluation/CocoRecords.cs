namespace Osprey.Evaluation;

/// <summary>One detection in image pixels.</summary>
public readonly record struct Detection(double X1, double Y1, double X2, double Y2, double Score, int Class);

/// <summary>One ground-truth box in image pixels.</summary>
public readonly record struct GroundTruth(double X1, double Y1, double X2, double Y2, int Class);

/// <summary>
/// COCOeval's per (image, class) record (<c>evaluateImg</c> for area 'all', maxDets 100), plain data so that
/// data-parallel ranks can gather and merge them.
/// </summary>
/// <param name="ClassId">The class.</param>
/// <param name="GtCount">Ground truths of this class in the image.</param>
/// <param name="Scores">Detection scores, stably sorted descending and capped at maxDets.</param>
/// <param name="Matched">Row-major (T = 10 IoU thresholds) × D: whether detection d matched a gt at threshold t.</param>
public sealed record ClassImageRecord(int ClassId, int GtCount, double[] Scores, bool[] Matched);

/// <summary>All class records of one image; <see cref="ImageId"/> orders images as COCOeval's sorted imgIds.</summary>
public sealed record ImageRecord(long ImageId, IReadOnlyList<ClassImageRecord> Classes);

/// <summary>Per-class results; AP values are COCOeval's, precision/recall Ultralytics' max-mean-F1 operating point.</summary>
/// <param name="ClassId">The class.</param>
/// <param name="Images">Images holding at least one gt of the class.</param>
/// <param name="Instances">Ground truths of the class.</param>
/// <param name="Precision">Precision at the confidence maximising the (smoothed) mean F1 over classes.</param>
/// <param name="Recall">Recall at that confidence.</param>
/// <param name="AP50">AP at IoU 0.50 (101-point, COCOeval).</param>
/// <param name="AP50To95">AP averaged over IoU 0.50:0.05:0.95.</param>
/// <param name="ApPerThreshold">AP at each of the 10 IoU thresholds.</param>
public sealed record ClassMetrics(int ClassId, int Images, int Instances, double Precision, double Recall, double AP50,
    double AP50To95, IReadOnlyList<double> ApPerThreshold);

/// <summary>Dataset-level detection metrics.</summary>
/// <param name="Precision">Mean over classes with gts of <see cref="ClassMetrics.Precision"/>.</param>
/// <param name="Recall">Mean over classes with gts of <see cref="ClassMetrics.Recall"/>.</param>
/// <param name="MAP50">COCOeval AP@0.50 (mean over classes with gts).</param>
/// <param name="MAP50To95">COCOeval AP@[0.50:0.95].</param>
/// <param name="Classes">One row per class that has gts, by class id.</param>
public sealed record DetectionMetrics(double Precision, double Recall, double MAP50, double MAP50To95,
    IReadOnlyList<ClassMetrics> Classes)
{
    /// <summary>Ultralytics fitness: 0.1·mAP50 + 0.9·mAP50-95.</summary>
    public double Fitness => FitnessOf(MAP50, MAP50To95);

    /// <summary>Ultralytics fitness of <paramref name="map50"/> and <paramref name="map50To95"/>: 0.1·mAP50 + 0.9·mAP50-95
    /// (what best.safetensors and the tuner rank by).</summary>
    public static double FitnessOf(double map50, double map50To95) => 0.1 * map50 + 0.9 * map50To95;
}
