using Osprey.Evaluation;

namespace Osprey.Tests.Plotting;

/// <summary>
/// Ultralytics' PR curve worked by hand. One class, two gts A = (0,0,10,10), B = (20,20,30,30); detections by score:
/// 0.9 on A (TP), 0.8 on nothing (FP), 0.7 on B (TP).
///   cumulative TP = 1, 1, 2   FP = 0, 1, 1
///   recall    = 1/2, 1/2, 2/2 = 0.5, 0.5, 1
///   precision = 1/1, 1/2, 2/3
///   padded:   mrec = [0, 0.5, 0.5, 1, 1]   mpre = [1, 1, 0.5, 2/3, 0]
///   envelope (max to the right): mpre = [1, 1, 2/3, 2/3, 0]
///   sampled at x_j = j/999 (numpy.interp; at a repeated x the last point wins, at x = 1 the last value, 0):
///     j = 0..499   (x &lt; 0.5)      → 1
///     j = 500..998 (0.5 &lt; x &lt; 1) → 2/3
///     j = 999      (x = 1)        → 0
/// COCOeval AP50: recall thresholds 0..0.50 (51 of them) take precision 1, 0.51..1 (50) take 2/3:
///   (51 + 50·2/3) / 101 = 0.834983…
/// </summary>
public class PrecisionRecallCurveTests
{
    private static CocoEvaluator HandWorked()
    {
        var evaluator = new CocoEvaluator();
        evaluator.Update(1,
            new[] { new Detection(0, 0, 10, 10, 0.9, 0), new Detection(50, 50, 60, 60, 0.8, 0), new Detection(20, 20, 30, 30, 0.7, 0) },
            new[] { new GroundTruth(0, 0, 10, 10, 0), new GroundTruth(20, 20, 30, 30, 0) });
        return evaluator;
    }

    [Fact]
    public void SampleFollowsTheHandWorkedEnvelope()
    {
        var x = Enumerable.Range(0, 1000).Select(j => j / 999.0).ToArray();
        var curve = PrecisionRecall.Sample(new[] { true, false, true }, 2, x);
        Assert.Equal(1000, curve.Length);
        for (int j = 0; j <= 499; j++) Assert.Equal(1.0, curve[j], 12);
        for (int j = 500; j <= 998; j++) Assert.Equal(2.0 / 3, curve[j], 12);
        Assert.Equal(0.0, curve[999], 12);
    }

    [Fact]
    public void EvaluatorCurvesMatchTheHandWorkedCase()
    {
        var curves = HandWorked().PrecisionRecallCurves();
        var curve = Assert.Single(curves);
        Assert.Equal(0, curve.ClassId);
        Assert.Equal(2, curve.Instances);
        Assert.Equal((51 + 50 * 2.0 / 3) / 101, curve.AP, 9);
        Assert.Equal(PrecisionRecall.Points, curve.Recall.Count);
        Assert.Equal(0.0, curve.Recall[0]);
        Assert.Equal(1.0, curve.Recall[^1]);
        Assert.Equal(1.0, curve.Precision[250], 12);
        Assert.Equal(1.0, curve.Precision[499], 12);
        Assert.Equal(2.0 / 3, curve.Precision[500], 12);
        Assert.Equal(2.0 / 3, curve.Precision[998], 12);
        Assert.Equal(0.0, curve.Precision[999], 12);
    }

    [Fact]
    public void OrderIsByScoreAcrossImages()
    {
        // Same three detections split over two images, the FP (0.8) in image 1 and the TPs in image 2:
        // the score order TP, FP, TP and so the curve are unchanged.
        var evaluator = new CocoEvaluator();
        evaluator.Update(1, new[] { new Detection(50, 50, 60, 60, 0.8, 0) }, Array.Empty<GroundTruth>());
        evaluator.Update(2,
            new[] { new Detection(20, 20, 30, 30, 0.7, 0), new Detection(0, 0, 10, 10, 0.9, 0) },
            new[] { new GroundTruth(0, 0, 10, 10, 0), new GroundTruth(20, 20, 30, 30, 0) });
        var curve = Assert.Single(evaluator.PrecisionRecallCurves());
        Assert.Equal(HandWorked().PrecisionRecallCurves()[0].Precision, curve.Precision);
    }

    [Fact]
    public void StricterIouTurnsALooseMatchIntoAFalsePositive()
    {
        // One gt (0,0,10,10), one detection (0,0,10,7): IoU 0.7 → TP at 0.5, FP at 0.75 (curve all 0, AP 0).
        var evaluator = new CocoEvaluator();
        evaluator.Update(1, new[] { new Detection(0, 0, 10, 7, 0.9, 0) }, new[] { new GroundTruth(0, 0, 10, 10, 0) });
        var at50 = Assert.Single(evaluator.PrecisionRecallCurves(0.5));
        Assert.All(at50.Precision.Take(999), p => Assert.Equal(1.0, p, 12));
        var at75 = Assert.Single(evaluator.PrecisionRecallCurves(0.75));
        Assert.All(at75.Precision, p => Assert.Equal(0.0, p, 12));
        Assert.Equal(0.0, at75.AP);
        Assert.Throws<ArgumentOutOfRangeException>(() => evaluator.PrecisionRecallCurves(0.6001));
    }

    [Fact]
    public void ClassesWithoutGtsAreLeftOutAndUndetectedClassesAreZero()
    {
        // class 0: gt, no detection → zero curve; class 1: detection, no gt → no curve.
        var evaluator = new CocoEvaluator();
        evaluator.Update(1, new[] { new Detection(0, 0, 10, 10, 0.9, 1) }, new[] { new GroundTruth(0, 0, 10, 10, 0) });
        var curve = Assert.Single(evaluator.PrecisionRecallCurves());
        Assert.Equal(0, curve.ClassId);
        Assert.All(curve.Precision, p => Assert.Equal(0.0, p));
    }
}
