using Osprey.Evaluation;
using static TorchSharp.torch;

namespace Osprey.Tests.Evaluation;

/// <summary>
/// COCOeval semantics worked by hand. AP = mean over the 101 recall thresholds r = 0, 0.01, …, 1 of the
/// right-monotone precision at the first detection (in score order) whose cumulative recall ≥ r; 0 when none.
/// </summary>
public class CocoEvaluatorTests
{
    private static GroundTruth Gt(double x1, double y1, double x2, double y2, int cls = 0) => new(x1, y1, x2, y2, cls);
    private static Detection Det(double x1, double y1, double x2, double y2, double score, int cls = 0) => new(x1, y1, x2, y2, score, cls);

    [Fact]
    public void ThresholdsAreNumpyLinspace()
    {
        Assert.Equal(new[] { 0.5, 0.55, 0.6, 0.65, 0.7, 0.75, 0.8, 0.85, 0.8999999999999999, 0.95 }, CocoEvaluator.IouThresholds);
        Assert.Equal(101, CocoEvaluator.RecallThresholds.Count);
        Assert.Equal(0.47000000000000003, CocoEvaluator.RecallThresholds[47]);
        Assert.Equal(0.5, CocoEvaluator.RecallThresholds[50]);
    }

    [Fact]
    public void PerfectDetectionsScoreOne()
    {
        var evaluator = new CocoEvaluator();
        evaluator.Update(1, new[] { Det(0, 0, 10, 10, 0.9) }, new[] { Gt(0, 0, 10, 10) });
        evaluator.Update(2, new[] { Det(5, 5, 20, 30, 0.8, 1) }, new[] { Gt(5, 5, 20, 30, 1) });
        var metrics = evaluator.Compute();
        Assert.Equal(1.0, metrics.MAP50, 9);
        Assert.Equal(1.0, metrics.MAP50To95, 9);
        Assert.Equal(1.0, metrics.Fitness, 9);
        Assert.Equal(1.0, metrics.Precision, 9);
        Assert.Equal(1.0, metrics.Recall, 9);
        Assert.Equal(new[] { 0, 1 }, metrics.Classes.Select(c => c.ClassId));
    }

    [Fact]
    public void ShiftedDetectionMatchesOnlyUpToItsIou()
    {
        // gt (0,0,10,10), det (0,0,10,6): inter 60, union 100 + 60 − 60 = 100 → IoU 0.6 (the double 0.6 = threshold[2]).
        // Matched at 0.50, 0.55, 0.60 (IoU ≥ t) → AP 1; unmatched at 0.65…0.95 → AP 0.
        // mAP50 = 1, mAP50-95 = 3/10 = 0.3, fitness = 0.1·1 + 0.9·0.3 = 0.37.
        var evaluator = new CocoEvaluator();
        evaluator.Update(7, new[] { Det(0, 0, 10, 6, 0.9) }, new[] { Gt(0, 0, 10, 10) });
        var metrics = evaluator.Compute();
        Assert.Equal(1.0, metrics.MAP50, 9);
        Assert.Equal(0.3, metrics.MAP50To95, 9);
        Assert.Equal(0.37, metrics.Fitness, 9);
        // (precision is 1/(1 + np.spacing(1)) = 1 − 1.1e-16, as in COCOeval)
        Assert.Equal(new[] { 1.0, 1, 1, 0, 0, 0, 0, 0, 0, 0 }, metrics.Classes[0].ApPerThreshold.Select(ap => Math.Round(ap, 12)));
    }

    [Fact]
    public void DuplicateDetectionIsAFalsePositive()
    {
        // Image 1: gt A with dets 0.9 (TP) and 0.8 (same box, duplicate → FP). Image 2: gt B with det 0.7 (TP).
        // Sorted: TP, FP, TP → cum tp 1,1,2; fp 0,1,1; recall .5,.5,1; precision 1, .5, 2/3.
        // Right-monotone: 1, 2/3, 2/3. Thresholds 0…0.50 (51) → index 0 → 1; 0.51…1.00 (50) → index 2 → 2/3.
        // AP = (51·1 + 50·2/3)/101 = 84.333333/101 = 0.834983 (every IoU threshold: exact boxes).
        var evaluator = new CocoEvaluator();
        evaluator.Update(1, new[] { Det(0, 0, 10, 10, 0.9), Det(0, 0, 10, 10, 0.8) }, new[] { Gt(0, 0, 10, 10) });
        evaluator.Update(2, new[] { Det(20, 20, 40, 40, 0.7) }, new[] { Gt(20, 20, 40, 40) });
        var metrics = evaluator.Compute();
        Assert.Equal(84.333333333 / 101, metrics.MAP50, 6);
        Assert.Equal(84.333333333 / 101, metrics.MAP50To95, 6);
    }

    [Fact]
    public void MissedGtHalvesRecall()
    {
        // 2 gts, one found (0.9): recall 0.5, precision 1. searchsorted 'left' finds index 0 for r = 0 … 0.50
        // (51 thresholds, 0.50 included since recall 0.5 ≥ 0.5) → AP = 51/101 = 0.504950.
        var evaluator = new CocoEvaluator();
        evaluator.Update(1, new[] { Det(0, 0, 10, 10, 0.9) }, new[] { Gt(0, 0, 10, 10), Gt(50, 50, 60, 60) });
        var metrics = evaluator.Compute();
        Assert.Equal(51.0 / 101, metrics.MAP50, 9);
        Assert.Equal(51.0 / 101, metrics.MAP50To95, 9);
        // Ultralytics P/R: P = 1 and R = 0.5 wherever F1 peaks (every confidence ≤ 0.9).
        Assert.Equal(1.0, metrics.Precision, 9);
        Assert.Equal(0.5, metrics.Recall, 9);
        Assert.Equal(2, metrics.Classes[0].Instances);
        Assert.Equal(1, metrics.Classes[0].Images);
    }

    [Fact]
    public void WrongClassScoresZeroAndClassWithoutGtIsExcluded()
    {
        // gt class 0, det class 1 on the same box: class 0 has no detections → AP 0;
        // class 1 has no gt → −1 in COCOeval → left out of the mean and of the table.
        var evaluator = new CocoEvaluator();
        evaluator.Update(1, new[] { Det(0, 0, 10, 10, 0.9, cls: 1) }, new[] { Gt(0, 0, 10, 10, cls: 0) });
        var metrics = evaluator.Compute();
        Assert.Equal(0.0, metrics.MAP50);
        Assert.Equal(0.0, metrics.MAP50To95);
        Assert.Equal(new[] { 0 }, metrics.Classes.Select(c => c.ClassId));

        // Perfect class 0 plus a class-2 false positive (no class-2 gt anywhere) → class 2 excluded → mAP 1.
        var other = new CocoEvaluator();
        other.Update(1, new[] { Det(0, 0, 10, 10, 0.9), Det(30, 30, 40, 40, 0.95, cls: 2) }, new[] { Gt(0, 0, 10, 10) });
        Assert.Equal(1.0, other.Compute().MAP50To95, 9);
    }

    [Theory]
    // 100 false positives (disjoint boxes) scored 0.500 … 0.599 and one true positive.
    // TP at 0.4: it is the 101st detection → dropped by maxDets 100 → AP 0.
    // TP at 0.5505: 49 FPs score higher (0.551 … 0.599) → TP is 50th: precision 1/50 at recall 1; the monotone
    // envelope gives 0.02 at every threshold → AP = 0.02.
    [InlineData(0.4, 0.0)]
    [InlineData(0.5505, 0.02)]
    public void DetectionsBeyondMaxDetsAreDropped(double tpScore, double expectedAp)
    {
        var detections = Enumerable.Range(0, 100).Select(i => Det(100 + 20 * i, 0, 110 + 20 * i, 10, 0.5 + i * 0.001))
            .Append(Det(0, 0, 10, 10, tpScore)).ToArray();
        var evaluator = new CocoEvaluator();
        evaluator.Update(1, detections, new[] { Gt(0, 0, 10, 10) });
        Assert.Equal(expectedAp, evaluator.Compute().MAP50To95, 9);
    }

    [Fact]
    public void LaterGtWinsAnIouTie()
    {
        // COCOeval keeps scanning gts and takes a later one with an IoU equal to the best so far.
        // det1 (0,0,10,10) has IoU 100/200 = 0.5 with gt0 (0,0,10,20) and with gt1 (0,-10,10,10) → matches gt1;
        // det2 (0,0,10,20) then matches gt0 (IoU 1). Both TP → AP50 = 1. (Were the first gt to win, det1 would take
        // gt0 and det2 would be left with gt1 at IoU 100/300 = 0.33 → FP.)
        var evaluator = new CocoEvaluator();
        var record = CocoEvaluator.Evaluate(1, new[] { Det(0, 0, 10, 10, 0.9), Det(0, 0, 10, 20, 0.8) },
            new[] { Gt(0, 0, 10, 20), Gt(0, -10, 10, 10) });
        Assert.Equal(new[] { true, true }, record.Classes[0].Matched.Take(2));
        evaluator.Add(record);
        Assert.Equal(1.0, evaluator.Compute().MAP50, 9);
        // At 0.55, det1 (IoU 0.5) is unmatched and det2 matches gt0.
        Assert.Equal(new[] { false, true }, record.Classes[0].Matched.Skip(2).Take(2));
    }

    [Fact]
    public void TensorUpdateMatchesRecordUpdate()
    {
        using var scope = NewDisposeScope();
        var a = new CocoEvaluator();
        a.Update(3, tensor(new float[] { 0, 0, 10, 6, 0.9f, 0 }).view(1, 6), tensor(new float[] { 0, 0, 10, 10 }).view(1, 4), tensor(new float[] { 0 }));
        Assert.Equal(0.3, a.Compute().MAP50To95, 6);
    }

    [Fact]
    public void DuplicateImageIdIsRejected()
    {
        var evaluator = new CocoEvaluator();
        evaluator.Update(1, Array.Empty<Detection>(), new[] { Gt(0, 0, 1, 1) });
        Assert.Throws<ArgumentException>(() => evaluator.Update(1, Array.Empty<Detection>(), new[] { Gt(0, 0, 1, 1) }));
    }

    [Fact]
    public void ShardsMergeToTheSingleProcessResult()
    {
        // 12 images, 3 classes, jittered boxes and tied scores across images (ties are broken by image order,
        // which merging must preserve). Shard A gets the odd ids, shard B the even ids, fed in reverse order.
        var random = new Random(1234);
        var images = Enumerable.Range(0, 12).Select(id =>
        {
            var gts = Enumerable.Range(0, random.Next(0, 4)).Select(_ =>
            {
                double x = random.Next(0, 200), y = random.Next(0, 200);
                return Gt(x, y, x + random.Next(10, 60), y + random.Next(10, 60), random.Next(0, 3));
            }).ToArray();
            var dets = gts.Select(g => Det(g.X1 + random.Next(-5, 6), g.Y1 + random.Next(-5, 6), g.X2 + random.Next(-5, 6),
                    g.Y2 + random.Next(-5, 6), Math.Round(random.NextDouble(), 1), random.Next(0, 4) == 0 ? (g.Class + 1) % 3 : g.Class))
                .Concat(Enumerable.Range(0, random.Next(0, 3)).Select(_ => Det(300, 300, 320, 330, Math.Round(random.NextDouble(), 1), random.Next(0, 3))))
                .ToArray();
            return (Id: (long)id, Dets: dets, Gts: gts);
        }).ToArray();

        var single = new CocoEvaluator();
        foreach (var image in images) single.Update(image.Id, image.Dets, image.Gts);
        var shardA = new CocoEvaluator();
        var shardB = new CocoEvaluator();
        foreach (var image in images.Reverse()) (image.Id % 2 == 1 ? shardA : shardB).Update(image.Id, image.Dets, image.Gts);
        var merged = new CocoEvaluator();
        merged.Merge(shardB);
        foreach (var record in shardA.Records) merged.Add(record);

        var expected = single.Compute();
        var actual = merged.Compute();
        Assert.True(expected.MAP50 > 0 && expected.MAP50 < 1, $"non-trivial scene: {expected.MAP50}");
        Assert.Equal(expected.MAP50, actual.MAP50);
        Assert.Equal(expected.MAP50To95, actual.MAP50To95);
        Assert.Equal(expected.Precision, actual.Precision);
        Assert.Equal(expected.Recall, actual.Recall);
        Assert.Equal(expected.Classes.Select(c => (c.ClassId, c.AP50, c.AP50To95, c.Precision, c.Recall)),
            actual.Classes.Select(c => (c.ClassId, c.AP50, c.AP50To95, c.Precision, c.Recall)));
    }
}
