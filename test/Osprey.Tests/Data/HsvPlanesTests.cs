using OpenCvSharp;
using Osprey.Data;

namespace Osprey.Tests.Data;

/// <summary>The fused HSV + flips + CHW pass against the straightforward OpenCV path: equal bytes, no tolerance.</summary>
public class HsvPlanesTests
{
    internal const string NoAvx2 = "HsvPlanes.Supported is false: AVX2 or FMA is not available to the runtime on this CPU, and the pipeline keeps Hsv.Apply there (no fused vector path to test)";

    /// <summary>Every 24-bit BGR colour once, as a 4096×4096 image.</summary>
    private static Mat AllColours()
    {
        var mat = new Mat(4096, 4096, MatType.CV_8UC3);
        var span = mat.AsSpan<byte>();
        for (var i = 0; i < 1 << 24; i++)
        {
            span[3 * i] = (byte)i;
            span[3 * i + 1] = (byte)(i >> 8);
            span[3 * i + 2] = (byte)(i >> 16);
        }
        return mat;
    }

    [Fact]
    public void ForwardEqualsOpenCvOnEveryColour()
    {
        using var bgr = AllColours();
        using var hsv = new Mat();
        Cv2.CvtColor(bgr, hsv, ColorConversionCodes.BGR2HSV);
        var a = bgr.AsSpan<byte>();
        var h = hsv.AsSpan<byte>();
        var bad = 0;
        for (var i = 0; i < 1 << 24; i++)
        {
            var (hh, ss, vv) = HsvPlanes.Forward(a[3 * i + 2], a[3 * i + 1], a[3 * i]);
            if (hh != h[3 * i] || ss != h[3 * i + 1] || vv != h[3 * i + 2]) bad++;
        }
        Assert.Equal(0, bad);
    }

    [SkippableFact]
    public void BackwardEqualsOpenCvOnEveryHsvTriple()
    {
        Skip.IfNot(HsvPlanes.Supported, NoAvx2);
        using var hsv = new Mat(180 * 256, 256, MatType.CV_8UC3);
        var span = hsv.AsSpan<byte>();
        for (var i = 0; i < 180 * 256 * 256; i++)
        {
            span[3 * i] = (byte)(i / 65536);
            span[3 * i + 1] = (byte)(i >> 8);
            span[3 * i + 2] = (byte)i;
        }
        using var bgr = new Mat();
        Cv2.CvtColor(hsv, bgr, ColorConversionCodes.HSV2BGR);
        var o = bgr.AsSpan<byte>();
        var bad = 0;
        for (var i = 0; i < 180 * 256 * 256; i++)
        {
            HsvPlanes.Backward(span[3 * i], span[3 * i + 1], span[3 * i + 2], truncate: true, out var r, out var g, out var b);
            if (b != o[3 * i] || g != o[3 * i + 1] || r != o[3 * i + 2]) bad++;
        }
        Assert.Equal(0, bad);
    }

    /// <summary>What the pipeline did before: Hsv.Apply, Cv2.Flip (up-down, then left-right), MixChannels into R, G, B planes.</summary>
    private static byte[] Straightforward(Mat bgr, double hg, double sg, double vg, bool lr, bool ud)
    {
        using var copy = bgr.Clone();
        Hsv.Apply(copy, hg, sg, vg);
        if (ud) Cv2.Flip(copy, copy, FlipMode.X);
        if (lr) Cv2.Flip(copy, copy, FlipMode.Y);
        var planes = new byte[3 * copy.Width * copy.Height];
        using var split = new Mat();
        var channels = Cv2.Split(copy);
        var plane = copy.Width * copy.Height;
        channels[2].AsSpan<byte>()[..plane].CopyTo(planes.AsSpan(0, plane));
        channels[1].AsSpan<byte>()[..plane].CopyTo(planes.AsSpan(plane, plane));
        channels[0].AsSpan<byte>()[..plane].CopyTo(planes.AsSpan(2 * plane, plane));
        foreach (var c in channels) c.Dispose();
        return planes;
    }

    /// <param name="pixels">The bytes of <paramref name="bgr"/>, or of the continuous image it is a view of.</param>
    private static byte[] Fused(Mat bgr, double hg, double sg, double vg, bool lr, bool ud, bool vector, (int, int, int, int)? active = null, Mat? pixels = null,
        bool wide = true)
    {
        var planes = new byte[3 * bgr.Width * bgr.Height];
        HsvPlanes.Apply((pixels ?? bgr).AsSpan<byte>(), (int)bgr.Step(), bgr.Width, bgr.Height, planes, new HsvPlanes.Gains(hg, sg, vg), lr, ud, active, vector, wide);
        return planes;
    }

    public static TheoryData<double, double, double, bool, bool> Cases => new()
    {
        { 1.0, 1.0, 1.0, false, false },
        { 1.015, 1.7, 1.4, true, false },
        { 0.985, 0.3, 0.6, false, true },
        { 1.0071, 0.51234, 1.2345, true, true },
        { 0.99123456, 1.4123456, 0.7123456, false, false },
    };

    [Fact]
    public void RandomGainsTakeTheVectorPath()
    {
        var random = new Random(3);
        var exact = Enumerable.Range(0, 100).Count(_ => new HsvPlanes.Gains(1 + (random.NextDouble() * 2 - 1) * 0.015,
            1 + (random.NextDouble() * 2 - 1) * 0.7, 1 + (random.NextDouble() * 2 - 1) * 0.4).FloatExact);
        Assert.True(exact >= 95, $"{exact}/100");
    }

    [SkippableTheory]
    [MemberData(nameof(Cases))]
    public void FusedEqualsOpenCvOnEveryColour(double hg, double sg, double vg, bool lr, bool ud)
    {
        Skip.IfNot(HsvPlanes.Supported, NoAvx2);
        using var bgr = AllColours();
        var expected = Straightforward(bgr, hg, sg, vg, lr, ud);
        Assert.True(expected.AsSpan().SequenceEqual(Fused(bgr, hg, sg, vg, lr, ud, vector: true)), "vector path differs");
        // where AVX-512 runs the 16-pixel body above, the 8-pixel body too (elsewhere both calls take the 8-pixel body)
        Assert.True(expected.AsSpan().SequenceEqual(Fused(bgr, hg, sg, vg, lr, ud, vector: true, wide: false)), "8-pixel vector path differs");
        using var small = new Mat(bgr, new Rect(0, 0, 1003, 61)); // odd width: vector body + scalar tail, non-continuous rows
        var expectedSmall = Straightforward(small, hg, sg, vg, lr, ud);
        Assert.True(expectedSmall.AsSpan().SequenceEqual(Fused(small, hg, sg, vg, lr, ud, vector: true, pixels: bgr)), "vector path with tails differs");
        Assert.True(expectedSmall.AsSpan().SequenceEqual(Fused(small, hg, sg, vg, lr, ud, vector: true, pixels: bgr, wide: false)), "8-pixel vector path with tails differs");
        Assert.True(expectedSmall.AsSpan().SequenceEqual(Fused(small, hg, sg, vg, lr, ud, vector: false, pixels: bgr)), "scalar path differs");
    }

    [SkippableFact]
    public void FusedEqualsOpenCvOnARealImageWithAGrayBorderOutsideTheActiveRectangle()
    {
        Skip.IfNot(HsvPlanes.Supported, NoAvx2);
        var path = Directory.GetFiles(Path.Combine(DataTestFiles.SharedData, "coco8", "images", "train"))[0];
        using var image = Cv2.ImRead(path);
        using var canvas = new Mat(645, 643, MatType.CV_8UC3, new Scalar(114, 114, 114));
        var (x0, y0) = (37, 21);
        int w = Math.Min(image.Width, 643 - x0 - 5), h = Math.Min(image.Height, 645 - y0 - 9);
        using (var roi = new Mat(canvas, new Rect(x0, y0, w, h))) new Mat(image, new Rect(0, 0, w, h)).CopyTo(roi);
        var random = new Random(7);
        for (var k = 0; k < 8; k++)
        {
            double hg = 1 + (random.NextDouble() * 2 - 1) * 0.015, sg = 1 + (random.NextDouble() * 2 - 1) * 0.7, vg = 1 + (random.NextDouble() * 2 - 1) * 0.4;
            bool lr = (k & 1) != 0, ud = (k & 2) != 0;
            var expected = Straightforward(canvas, hg, sg, vg, lr, ud);
            Assert.True(expected.AsSpan().SequenceEqual(Fused(canvas, hg, sg, vg, lr, ud, vector: true, (x0, y0, x0 + w, y0 + h))), $"case {k} differs");
        }
    }
}
