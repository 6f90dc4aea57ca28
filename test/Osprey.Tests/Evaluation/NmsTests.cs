using Osprey.Evaluation;
using static TorchSharp.torch;

namespace Osprey.Tests.Evaluation;

public class NmsTests
{
    /// <summary>
    /// One image, nc 2, 5 anchors (centre-xywh, scores):
    /// A0 (10,10,10,10) cls0 0.90 → xyxy (5,5,15,15);
    /// A1 (11,10,10,10) cls0 0.80 → (6,5,16,15): IoU with A0 = 9·10 / (200 − 90) = 0.818 > 0.7 → suppressed;
    /// A2 (11,10,10,10) cls1 0.85 → other class → kept;
    /// A3 (50,50,10,10) cls0 0.20 → below conf 0.25;
    /// A4 (12,10,10,10) cls0 0.75 → (7,5,17,15): IoU with A0 = 80 / 120 = 0.667 ≤ 0.7 → kept.
    /// </summary>
    private static Tensor Scene()
    {
        float[,] anchors =
        {
            { 10, 10, 10, 10, 0.90f, 0.10f },
            { 11, 10, 10, 10, 0.80f, 0.10f },
            { 11, 10, 10, 10, 0.10f, 0.85f },
            { 50, 50, 10, 10, 0.20f, 0.05f },
            { 12, 10, 10, 10, 0.75f, 0.30f },
        };
        return tensor(anchors).transpose(0, 1).unsqueeze(0);   // (1, 6, 5)
    }

    private static float[] Rows(Tensor t) => t.data<float>().ToArray();

    [Fact]
    public void SuppressesSameClassKeepsOtherClassesAndThresholdsConfidence()
    {
        using var scope = NewDisposeScope();
        var output = Nms.NonMaxSuppression(Scene());
        Assert.Single(output);
        Assert.Equal(new long[] { 3, 6 }, output[0].shape);
        Assert.Equal(new[] { 5f, 5, 15, 15, 0.9f, 0, 6, 5, 16, 15, 0.85f, 1, 7, 5, 17, 15, 0.75f, 0 }, Rows(output[0]));
    }

    [Fact]
    public void MaxDetectionsKeepsTheBest()
    {
        using var scope = NewDisposeScope();
        var output = Nms.NonMaxSuppression(Scene(), new NmsOptions { MaxDetections = 2 });
        Assert.Equal(new[] { 0.9f, 0.85f }, Rows(output[0].select(1, 4)));
    }

    [Fact]
    public void ClassesFilter()
    {
        using var scope = NewDisposeScope();
        var output = Nms.NonMaxSuppression(Scene(), new NmsOptions { Classes = new[] { 1 } });
        Assert.Equal(new[] { 6f, 5, 16, 15, 0.85f, 1 }, Rows(output[0]));
    }

    [Fact]
    public void ConfidenceThresholdIsStrict()
    {
        using var scope = NewDisposeScope();
        // A1's 0.80 is not > 0.80; A4's 0.75 is below.
        var output = Nms.NonMaxSuppression(Scene(), new NmsOptions { ConfidenceThreshold = 0.8f });
        Assert.Equal(new[] { 0.9f, 0.85f }, Rows(output[0].select(1, 4)));
    }

    [Fact]
    public void AgnosticSuppressesAcrossClasses()
    {
        using var scope = NewDisposeScope();
        // A2 (IoU 0.818 with A0) is now suppressed; A4 survives (0.667 with A0; A2 no longer suppresses).
        var output = Nms.NonMaxSuppression(Scene(), new NmsOptions { Agnostic = true });
        Assert.Equal(new[] { 0.9f, 0.75f }, Rows(output[0].select(1, 4)));
    }

    [Fact]
    public void MultiLabelEmitsEveryClassAboveThreshold()
    {
        using var scope = NewDisposeScope();
        // A4 has cls0 0.75 and cls1 0.30 > 0.25: the cls1 copy of A4 vs A2 (cls1, 0.85) has IoU 0.818 → suppressed.
        // With conf 0.25 nothing else gains a second label; output is as single-label.
        var output = Nms.NonMaxSuppression(Scene(), new NmsOptions { MultiLabel = true });
        Assert.Equal(new[] { 0.9f, 0.85f, 0.75f }, Rows(output[0].select(1, 4)));
        // IoU threshold 0.9: nothing suppressed → A0, A2, A1, A4(cls0), A4(cls1).
        var loose = Nms.NonMaxSuppression(Scene(), new NmsOptions { MultiLabel = true, IouThreshold = 0.9f });
        Assert.Equal(new[] { 0.9f, 0.85f, 0.8f, 0.75f, 0.3f }, Rows(loose[0].select(1, 4)));
        Assert.Equal(new[] { 0f, 1, 0, 0, 1 }, Rows(loose[0].select(1, 5)));
    }

    [Fact]
    public void EmptyImageGivesEmptyRows()
    {
        using var scope = NewDisposeScope();
        var batch = cat(new[] { Scene(), zeros(1, 6, 5) }, 0);
        var output = Nms.NonMaxSuppression(batch, new NmsOptions { ConfidenceThreshold = NmsOptions.ValidationConfidence });
        Assert.Equal(2, output.Count);
        Assert.Equal(new long[] { 0, 6 }, output[1].shape);
    }

    [Fact]
    public void ScaleBoxesUndoesLetterbox()
    {
        using var scope = NewDisposeScope();
        // 240×320 (h×w) letterboxed to 640×640: gain = min(640/240, 640/320) = 2;
        // pad x = round(0/2 − 0.1) = 0, pad y = round((640 − 480)/2 − 0.1) = round(79.9) = 80.
        // (20,100,220,300) → ((20−0)/2, (100−80)/2, 220/2, (300−80)/2) = (10,10,110,110);
        // (−10,60,700,600) → (−5,−10,350,260) → clipped to (0,0,320,240). Extra columns pass through.
        var boxes = tensor(new float[] { 20, 100, 220, 300, 0.9f, 1, -10, 60, 700, 600, 0.5f, 0 }).view(2, 6);
        var scaled = Nms.ScaleBoxes(boxes, 640, 640, 240, 320);
        Assert.Equal(new[] { 10f, 10, 110, 110, 0.9f, 1, 0, 0, 320, 240, 0.5f, 0 }, Rows(scaled));
        Assert.Equal(20f, boxes[0, 0].item<float>()); // input untouched
    }
}
