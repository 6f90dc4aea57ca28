using Osprey.Losses;
using TorchSharp;
using static TorchSharp.torch;

namespace Osprey.Tests.Losses;

public class BoxOpsTests
{
    private static float Overlap(float[] box1, float[] box2, IouKind kind, bool xywh = false)
    {
        using var scope = NewDisposeScope();
        return BoxOps.Iou(tensor(box1), tensor(box2), kind, xywh).item<float>();
    }

    [Theory]
    // (0,0,4,4) vs (2,2,6,6): inter 2·2 = 4, union 16 + 16 − 4 = 28 → IoU 1/7 = 0.142857.
    // Hull 6×6 = 36 → GIoU = 1/7 − (36 − 28)/36 = 0.142857 − 0.222222 = −0.079365.
    // Centres (2,2),(4,4): ρ² = 2² + 2² = 8, hull diagonal² = 36 + 36 = 72 → DIoU = 1/7 − 8/72 = 0.031746.
    // Same aspect ratio → v = 0 → CIoU = DIoU.
    [InlineData(IouKind.IoU, 0.142857f)]
    [InlineData(IouKind.GIoU, -0.079365f)]
    [InlineData(IouKind.DIoU, 0.031746f)]
    [InlineData(IouKind.CIoU, 0.031746f)]
    public void ShiftedSquares(IouKind kind, float expected)
        => Assert.Equal(expected, Overlap(new[] { 0f, 0, 4, 4 }, new[] { 2f, 2, 6, 6 }, kind), 5);

    [Theory]
    // (0,0,4,2) vs (0,0,2,4): inter 2·2 = 4, union 8 + 8 − 4 = 12 → IoU 1/3.
    // Hull 4×4 = 16 → GIoU = 1/3 − 4/16 = 0.083333.
    // Centres (2,1),(1,2): ρ² = 1 + 1 = 2, c² = 16 + 16 = 32 → DIoU = 1/3 − 0.0625 = 0.270833.
    // v = 4/π²·(atan(2/4) − atan(4/2))² = 0.405285·(0.463648 − 1.107149)² = 0.405285·0.414094 = 0.167826;
    // α = v/(v − IoU + 1) = 0.167826/0.834493 = 0.201111; CIoU = 0.270833 − 0.167826·0.201111 = 0.237082.
    [InlineData(IouKind.IoU, 0.333333f)]
    [InlineData(IouKind.GIoU, 0.083333f)]
    [InlineData(IouKind.DIoU, 0.270833f)]
    [InlineData(IouKind.CIoU, 0.237082f)]
    public void DifferentAspectRatios(IouKind kind, float expected)
        => Assert.Equal(expected, Overlap(new[] { 0f, 0, 4, 2 }, new[] { 0f, 0, 2, 4 }, kind), 5);

    [Theory]
    // (0,0,1,1) vs (2,2,3,3): no overlap → IoU 0; hull 3×3 = 9, union 2 → GIoU = −7/9 = −0.777778.
    // ρ² = 2² + 2² = 8, c² = 9 + 9 = 18 → DIoU = −0.444444; equal aspect → CIoU = DIoU.
    [InlineData(IouKind.IoU, 0f)]
    [InlineData(IouKind.GIoU, -0.777778f)]
    [InlineData(IouKind.DIoU, -0.444444f)]
    [InlineData(IouKind.CIoU, -0.444444f)]
    public void Disjoint(IouKind kind, float expected)
        => Assert.Equal(expected, Overlap(new[] { 0f, 0, 1, 1 }, new[] { 2f, 2, 3, 3 }, kind), 5);

    [Theory]
    // (1,1,3,3) inside (0,0,4,4): IoU = 4/16 = 0.25; hull = outer box = union → GIoU 0.25; same centre → DIoU 0.25;
    // same aspect → CIoU 0.25.
    [InlineData(IouKind.IoU)]
    [InlineData(IouKind.GIoU)]
    [InlineData(IouKind.DIoU)]
    [InlineData(IouKind.CIoU)]
    public void Contained(IouKind kind)
        => Assert.Equal(0.25f, Overlap(new[] { 0f, 0, 4, 4 }, new[] { 1f, 1, 3, 3 }, kind), 5);

    [Theory]
    [InlineData(IouKind.IoU)]
    [InlineData(IouKind.GIoU)]
    [InlineData(IouKind.DIoU)]
    [InlineData(IouKind.CIoU)]
    public void Identical(IouKind kind)
        => Assert.Equal(1f, Overlap(new[] { 1f, 2, 5, 3 }, new[] { 1f, 2, 5, 3 }, kind), 5);

    [Fact]
    public void XywhInputMatchesXyxy()
    {
        // xywh (2,2,4,4) = xyxy (0,0,4,4); (4,4,4,4) = (2,2,6,6): IoU 1/7 as above.
        Assert.Equal(0.142857f, Overlap(new[] { 2f, 2, 4, 4 }, new[] { 4f, 4, 4, 4 }, IouKind.IoU, xywh: true), 5);
        Assert.Equal(0.031746f, Overlap(new[] { 2f, 2, 4, 4 }, new[] { 4f, 4, 4, 4 }, IouKind.CIoU, xywh: true), 5);
    }

    [Fact]
    public void BroadcastsToPairs()
    {
        using var scope = NewDisposeScope();
        var a = tensor(new float[] { 0, 0, 4, 4, 0, 0, 4, 2 }).view(2, 1, 4);   // (2, 1, 4)
        var b = tensor(new float[] { 2, 2, 6, 6, 0, 0, 2, 4 }).view(1, 2, 4);   // (1, 2, 4)
        var iou = BoxOps.Iou(a, b, IouKind.IoU, xywh: false);                   // (2, 2, 1)
        Assert.Equal(new long[] { 2, 2, 1 }, iou.shape);
        // a1·b2: (0,0,4,4)∩(0,0,2,4) = 8, union 16 → 0.5; a2·b1: (0,0,4,2)∩(2,2,6,6) = 0 (touching).
        Assert.Equal(0.5f, iou[0, 1, 0].item<float>(), 5);
        Assert.Equal(0f, iou[1, 0, 0].item<float>(), 6);
    }

    [Fact]
    public void CiouAlphaCarriesNoGradient()
    {
        using var scope = NewDisposeScope();
        // d/dx2 of CIoU for box1 = (0,0,x2,2) at x2 = 4 vs (0,0,2,4); with α constant the analytic derivative is
        // dIoU − dDIoU-term − α·dv. Compare against the autograd result computed with an explicitly detached α.
        var box1 = tensor(new float[] { 0, 0, 4, 2 }).requires_grad_(true);
        var box2 = tensor(new float[] { 0, 0, 2, 4 });
        BoxOps.Iou(box1, box2, IouKind.CIoU, xywh: false).sum().backward();
        var grad = box1.grad!.clone();

        // Reference with α treated as a constant 0.201111 (value from DifferentAspectRatios).
        var box1b = tensor(new float[] { 0, 0, 4, 2 }).requires_grad_(true);
        var diou = BoxOps.Iou(box1b, box2, IouKind.DIoU, xywh: false);
        var p = box1b.chunk(4, -1);
        var w1 = p[2] - p[0];
        var h1 = p[3] - p[1] + 1e-7;
        var v = (4 / (Math.PI * Math.PI)) * ((tensor(2f) / tensor(4f + 1e-7f)).atan() - (w1 / h1).atan()).pow(2);
        (diou - v * 0.2011112f).sum().backward();
        Assert.True(allclose(grad, box1b.grad!, rtol: 1e-4, atol: 1e-5), $"{grad.str()} vs {box1b.grad!.str()}");
    }

    [Fact]
    public void PairwiseIouMatrix()
    {
        using var scope = NewDisposeScope();
        var a = tensor(new float[] { 0, 0, 4, 4, 10, 10, 12, 12 }).view(2, 4);
        var b = tensor(new float[] { 2, 2, 6, 6, 0, 0, 4, 4, 11, 10, 13, 12 }).view(3, 4);
        var iou = BoxOps.PairwiseIou(a, b);                                       // (2, 3)
        Assert.Equal(new long[] { 2, 3 }, iou.shape);
        // [1/7, 1, 0; 0, 0, (1·2)/(4 + 4 − 2) = 1/3]
        var expected = new[] { 1 / 7f, 1f, 0f, 0f, 0f, 1 / 3f };
        var actual = iou.data<float>().ToArray();
        for (int i = 0; i < expected.Length; i++) Assert.Equal(expected[i], actual[i], 5);
    }

    [Fact]
    public void FormatConversionsRoundTrip()
    {
        using var scope = NewDisposeScope();
        var xywh = tensor(new float[] { 10, 20, 4, 6 });
        var xyxy = BoxOps.XywhToXyxy(xywh);
        Assert.Equal(new float[] { 8, 17, 12, 23 }, xyxy.data<float>().ToArray());
        Assert.Equal(new float[] { 10, 20, 4, 6 }, BoxOps.XyxyToXywh(xyxy).data<float>().ToArray());
    }
}
