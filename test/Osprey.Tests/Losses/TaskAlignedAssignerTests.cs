using Osprey.Losses;
using static TorchSharp.torch;

namespace Osprey.Tests.Losses;

/// <summary>Crafted scenes on an 8×8 grid of anchors at (x + 0.5, y + 0.5); anchor index = 8·y + x.</summary>
public class TaskAlignedAssignerTests
{
    private const int Grid = 8;
    private const int NumAnchors = Grid * Grid;

    private static Tensor GridPoints()
    {
        var points = new float[NumAnchors * 2];
        for (int y = 0; y < Grid; y++)
            for (int x = 0; x < Grid; x++)
            {
                points[2 * (Grid * y + x)] = x + 0.5f;
                points[2 * (Grid * y + x) + 1] = y + 0.5f;
            }
        return tensor(points).view(NumAnchors, 2);
    }

    private static IEnumerable<int> AnchorsIn(int x1, int y1, int x2, int y2)
    {
        for (int y = y1; y < y2; y++)
            for (int x = x1; x < x2; x++)
                yield return Grid * y + x;
    }

    [Fact]
    public void TopKLimitsCandidatesAndScoresAreNormalisedPerGt()
    {
        using var scope = NewDisposeScope();
        // gt0 = (0,0,2,2) class 1 holds anchors 0, 1, 8, 9 (4 < top-k: all positive).
        // gt1 = (4,4,8,8) class 0 holds 16 anchors (x, y ∈ 4..7): only the top 10 by align metric are kept.
        var scores = full(new long[] { 1, NumAnchors, 2 }, 0.1f);
        var boxes = tensor(new float[] { 0, 0, 1, 1 }).expand(1, NumAnchors, 4).clone();
        float[] gt0Scores = { 0.25f, 0.36f, 0.49f, 0.64f };
        int[] gt0Anchors = { 0, 1, 8, 9 };
        for (int i = 0; i < 4; i++)
        {
            scores[0, gt0Anchors[i], 1] = tensor(gt0Scores[i]);
            boxes[0, gt0Anchors[i]] = tensor(new float[] { 0, 0, 2, 2 });         // predicted box = gt → CIoU 1
        }
        var gt1Anchors = AnchorsIn(4, 4, 8, 8).ToArray();
        for (int k = 0; k < 16; k++)
        {
            // score ((k+1)/16)² → align metric = √score · 1⁶ = (k+1)/16: the top 10 are k = 6..15.
            scores[0, gt1Anchors[k], 0] = tensor(MathF.Pow((k + 1) / 16f, 2));
            boxes[0, gt1Anchors[k]] = tensor(new float[] { 4, 4, 8, 8 });
        }
        var gtLabels = tensor(new float[] { 1, 0 }).view(1, 2, 1);
        var gtBoxes = tensor(new float[] { 0, 0, 2, 2, 4, 4, 8, 8 }).view(1, 2, 4);
        var maskGt = ones(1, 2, 1);

        using var result = new TaskAlignedAssigner(numClasses: 2).Assign(scores, boxes, GridPoints(), gtLabels, gtBoxes, maskGt);

        var fg = result.FgMask[0].data<bool>().ToArray();
        var gtIndex = result.TargetGtIndex[0].data<long>().ToArray();
        var targetScores = result.TargetScores[0].data<float>().ToArray();   // (A·2)
        Assert.Equal(14, fg.Count(f => f));                                // 4 + top-10
        foreach (var a in gt0Anchors) { Assert.True(fg[a]); Assert.Equal(0, gtIndex[a]); }
        for (int k = 0; k < 16; k++)
        {
            int a = gt1Anchors[k];
            Assert.Equal(k >= 6, fg[a]);
            if (k >= 6)
            {
                Assert.Equal(1, gtIndex[a]);
                // norm = metric·max IoU / max metric = ((k+1)/16)·1/1 → target score of class 0 = (k+1)/16.
                Assert.Equal((k + 1) / 16f, targetScores[2 * a], 4);
                Assert.Equal(0f, targetScores[2 * a + 1]);
            }
        }
        // gt0: metrics √0.25..√0.64 = 0.5, 0.6, 0.7, 0.8 → targets 0.625, 0.75, 0.875, 1 in class 1.
        float[] expected = { 0.625f, 0.75f, 0.875f, 1f };
        for (int i = 0; i < 4; i++)
        {
            Assert.Equal(expected[i], targetScores[2 * gt0Anchors[i] + 1], 4);
            Assert.Equal(0f, targetScores[2 * gt0Anchors[i]]);
        }
        // Σ target scores = (7 + 8 + … + 16)/16 + 3.25 = 115/16 + 3.25 = 10.4375.
        Assert.Equal(10.4375f, result.TargetScores.sum().item<float>(), 3);
        // Background anchor 7 carries no score and points at gt 0 (argmax of an all-zero column).
        Assert.False(fg[7]);
        Assert.Equal(0f, result.TargetScores[0, 7].sum().item<float>());
        Assert.Equal(new float[] { 0, 0, 2, 2 }, result.TargetBboxes[0, 7].data<float>().ToArray());
        Assert.Equal(new float[] { 4, 4, 8, 8 }, result.TargetBboxes[0, 63].data<float>().ToArray());
        Assert.Equal(new long[] { 1, 1 }, new[] { result.TargetLabels[0, 0].item<long>(), result.TargetLabels[0, 1].item<long>() });
    }

    /// <summary>gt0 = (0,0,4,4) class 0 and gt1 = (2,2,6,6) class 1 share anchors 18, 19, 26, 27.</summary>
    private static (Tensor Scores, Tensor Boxes) OverlapScene(long batch)
    {
        var scores = full(new long[] { batch, NumAnchors, 2 }, 0.5f);
        // Every anchor predicts (0,0,5,5): CIoU with gt0 = 16/25 − 0.5/50 = 0.63, with gt1 = 9/32 − 4.5/72 = 0.2175.
        var boxes = tensor(new float[] { 0, 0, 5, 5 }).expand(batch, NumAnchors, 4).clone();
        // Anchor 19 predicts gt1 exactly: CIoU 1 with gt1, 1/7 − 8/72 = 0.0317 with gt0.
        boxes[TensorIndex.Colon, 19] = tensor(new float[] { 2, 2, 6, 6 });
        return (scores, boxes);
    }

    [Fact]
    public void AnchorInsideTwoGtsGoesToHigherIou()
    {
        using var scope = NewDisposeScope();
        var (scores, boxes) = OverlapScene(1);
        var gtLabels = tensor(new float[] { 0, 1 }).view(1, 2, 1);
        var gtBoxes = tensor(new float[] { 0, 0, 4, 4, 2, 2, 6, 6 }).view(1, 2, 4);
        // top-k 16 = every anchor inside each gt (all have a positive metric).
        using var result = new TaskAlignedAssigner(numClasses: 2, topK: 16)
            .Assign(scores, boxes, GridPoints(), gtLabels, gtBoxes, ones(1, 2, 1));
        AssertOverlapSceneImage(result, 0);
    }

    private static void AssertOverlapSceneImage(AssignerResult result, int image)
    {
        var fg = result.FgMask[image].data<bool>().ToArray();
        var gtIndex = result.TargetGtIndex[image].data<long>().ToArray();
        Assert.Equal(16 + 16 - 4, fg.Count(f => f));
        foreach (var a in AnchorsIn(0, 0, 4, 4).Except(new[] { 19 })) { Assert.True(fg[a]); Assert.Equal(0, gtIndex[a]); }
        foreach (var a in AnchorsIn(2, 2, 6, 6).Except(new[] { 18, 26, 27 })) { Assert.True(fg[a]); Assert.Equal(1, gtIndex[a]); }
        Assert.Equal(1, result.TargetLabels[image, 19].item<long>());
        Assert.Equal(0, result.TargetLabels[image, 18].item<long>());
        // Anchor 19 is gt1's best: metric √0.5·1⁶ is gt1's max → its class-1 target = max IoU of gt1 = 1.
        Assert.Equal(1f, result.TargetScores[image, 19, 1].item<float>(), 4);
        // Anchor 0 (only in gt0): metric ratio 1 (all gt0 positives tie) × gt0's max IoU 0.63.
        Assert.Equal(0.63f, result.TargetScores[image, 0, 0].item<float>(), 4);
    }

    [Fact]
    public void PaddedGtsAreIgnored()
    {
        using var scope = NewDisposeScope();
        var (scores, boxes) = OverlapScene(2);
        // Image 0: the two gts then a padding row carrying a garbage box (mask 0).
        // Image 1: gt0 only, then two padding rows.
        var gtLabels = tensor(new float[] { 0, 1, 1, 0, 0, 0 }).view(2, 3, 1);
        var gtBoxes = tensor(new float[] { 0, 0, 4, 4, 2, 2, 6, 6, 0, 0, 8, 8, 0, 0, 4, 4, 0, 0, 0, 0, 0, 0, 0, 0 }).view(2, 3, 4);
        var maskGt = tensor(new float[] { 1, 1, 0, 1, 0, 0 }).view(2, 3, 1);
        using var result = new TaskAlignedAssigner(numClasses: 2, topK: 16)
            .Assign(scores, boxes, GridPoints(), gtLabels, gtBoxes, maskGt);
        AssertOverlapSceneImage(result, 0);
        var fg1 = result.FgMask[1].data<bool>().ToArray();
        Assert.Equal(AnchorsIn(0, 0, 4, 4).OrderBy(a => a), Enumerable.Range(0, NumAnchors).Where(a => fg1[a]));
        Assert.All(AnchorsIn(0, 0, 4, 4), a => Assert.Equal(0, result.TargetGtIndex[1, a].item<long>()));
    }

    [Fact]
    public void NoGtsGivesEmptyAssignment()
    {
        using var scope = NewDisposeScope();
        var (scores, boxes) = OverlapScene(1);
        using var result = new TaskAlignedAssigner(numClasses: 2)
            .Assign(scores, boxes, GridPoints(), zeros(1, 0, 1), zeros(1, 0, 4), zeros(1, 0, 1));
        Assert.False(result.FgMask.any().item<bool>());
        Assert.Equal(0f, result.TargetScores.sum().item<float>());
        Assert.Equal(2, result.TargetLabels[0, 0].item<long>());
    }

    [Fact]
    public void CandidatesMustBeStrictlyInside()
    {
        using var scope = NewDisposeScope();
        // Anchor (0.5, 0.5) against (0.5, 0, 2, 2): left distance 0 is not > 1e-9 → outside; (1.5, 0.5) is inside.
        var points = tensor(new float[] { 0.5f, 0.5f, 1.5f, 0.5f }).view(2, 2);
        var inside = TaskAlignedAssigner.SelectCandidatesInGts(points, tensor(new float[] { 0.5f, 0, 2, 2 }).view(1, 1, 4));
        Assert.Equal(new[] { false, true }, inside.data<bool>().ToArray());
    }
}
