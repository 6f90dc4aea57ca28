using Osprey.Evaluation;
using static TorchSharp.torch;

namespace Osprey.Tests.Evaluation;

public class ConfusionMatrixTests
{
    /// <summary>
    /// nc 2 (background = 2). gts: g0 (0,0,10,10) c0, g1 (20,20,30,30) c1, g2 (50,50,60,60) c0. dets:
    /// d0 = g0 box 0.9 c0 → correct [0,0]; d1 = g1 box 0.8 c0 → confused [0,1];
    /// d2 (80,80,90,90) 0.7 c1 → background FP [1,2]; d3 = g2 box 0.2 → conf ≤ 0.25 dropped → g2 missed [2,0];
    /// d4 (0,0,10,9) 0.6 c0: IoU 0.9 with g0 but g0 keeps d0 (IoU 1) → background FP [0,2].
    /// </summary>
    private static void AddScene(ConfusionMatrix matrix)
    {
        matrix.Process(
            new[]
            {
                new Detection(0, 0, 10, 10, 0.9, 0), new Detection(20, 20, 30, 30, 0.8, 0), new Detection(80, 80, 90, 90, 0.7, 1),
                new Detection(50, 50, 60, 60, 0.2, 0), new Detection(0, 0, 10, 9, 0.6, 0),
            },
            new[] { new GroundTruth(0, 0, 10, 10, 0), new GroundTruth(20, 20, 30, 30, 1), new GroundTruth(50, 50, 60, 60, 0) });
    }

    [Fact]
    public void CountsCorrectConfusedMissedAndBackground()
    {
        var matrix = new ConfusionMatrix(2);
        AddScene(matrix);
        Assert.Equal(new long[,] { { 1, 1, 1 }, { 0, 0, 1 }, { 1, 0, 0 } }, matrix.ToArray());
        // Image without gts: its confident detections are background FPs; 0.2 is dropped.
        matrix.Process(tensor(new float[] { 0, 0, 5, 5, 0.5f, 1, 0, 0, 5, 5, 0.2f, 0 }).view(2, 6), zeros(0, 4), zeros(0));
        Assert.Equal(2, matrix[1, 2]);
        var (tp, fp) = matrix.TruePositivesAndFalsePositives();
        Assert.Equal(new long[] { 1, 0 }, tp);
        // fp = row sum − diagonal: row 0 (1,1,1) → 2; row 1 (0,0,2) → 2.
        Assert.Equal(new long[] { 2, 2 }, fp);
    }

    [Fact]
    public void IouMustExceedThreshold()
    {
        // det (0,0,10,4.5) vs gt (0,0,10,10): IoU 45/100 = 0.45 (− eps) is not > 0.45 → missed gt + background FP.
        var matrix = new ConfusionMatrix(1);
        matrix.Process(new[] { new Detection(0, 0, 10, 4.5, 0.9, 0) }, new[] { new GroundTruth(0, 0, 10, 10, 0) });
        Assert.Equal(new long[,] { { 0, 1 }, { 1, 0 } }, matrix.ToArray());
    }

    [Fact]
    public void MergeAddsCounts()
    {
        var a = new ConfusionMatrix(2);
        var b = new ConfusionMatrix(2);
        AddScene(a);
        AddScene(b);
        a.Merge(b);
        Assert.Equal(new long[,] { { 2, 2, 2 }, { 0, 0, 2 }, { 2, 0, 0 } }, a.ToArray());
    }
}
