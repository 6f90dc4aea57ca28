using OpenCvSharp;
using Osprey.Data;

namespace Osprey.Tests.Data;

/// <summary>The separable scale-translate warp against OpenCV's classic warpAffine arithmetic (written out pixel by pixel
/// here) and against the OpenCV in use.</summary>
public class ScaleWarpTests
{
    /// <summary>OpenCV ≤ 4.10 warpAffine, INTER_LINEAR, BORDER_REPLICATE, one output pixel at a time.</summary>
    private static void Classic(Mat src, Mat dst, double[] m, Rect region)
    {
        double m0 = m[0], m1 = m[1], m2 = m[2] - region.X, m3 = m[3], m4 = m[4], m5 = m[5] - region.Y;
        var d = m0 * m4 - m1 * m3;
        d = d != 0 ? 1.0 / d : 0;
        double i0 = m4 * d, i4 = m0 * d, i1 = m1 * -d, i3 = m3 * -d;
        double i2 = -i0 * m2 - i1 * m5, i5 = -i3 * m2 - i4 * m5;
        static int R(double v) => (int)Math.Round(v, MidpointRounding.ToEven);
        var s = src.AsSpan<byte>();
        var o = dst.AsSpan<byte>();
        int w = src.Width, h = src.Height, step = (int)src.Step(), ostep = (int)dst.Step();
        for (var y = 0; y < region.Height; y++)
        {
            int x0 = R((i1 * y + i2) * 1024) + 16, y0 = R((i4 * y + i5) * 1024) + 16;
            for (var x = 0; x < region.Width; x++)
            {
                int X = (x0 + R(i0 * x * 1024)) >> 5, Y = (y0 + R(i3 * x * 1024)) >> 5;
                int sx = X >> 5, sy = Y >> 5, fx = X & 31, fy = Y & 31;
                int[] wt = [(32 - fx) * (32 - fy) * 32, fx * (32 - fy) * 32, (32 - fx) * fy * 32, fx * fy * 32];
                int xa = Math.Clamp(sx, 0, w - 1), xb = Math.Clamp(sx + 1, 0, w - 1), ya = Math.Clamp(sy, 0, h - 1), yb = Math.Clamp(sy + 1, 0, h - 1);
                for (var c = 0; c < 3; c++)
                {
                    var sum = s[ya * step + 3 * xa + c] * wt[0] + s[ya * step + 3 * xb + c] * wt[1] + s[yb * step + 3 * xa + c] * wt[2] + s[yb * step + 3 * xb + c] * wt[3];
                    o[(region.Y + y) * ostep + 3 * (region.X + x) + c] = (byte)Math.Clamp((sum + (1 << 14)) >> 15, 0, 255);
                }
            }
        }
    }

    private static IEnumerable<(double A, double Cx, double B, double Cy, Rect Region)> Cases(Mat image, int side, int count)
    {
        var random = new Random(5);
        for (var k = 0; k < count; k++)
        {
            var scale = 0.5 + random.NextDouble();
            double cx = (random.NextDouble() - 0.3) * side, cy = (random.NextDouble() - 0.3) * side;
            // the output pixels whose source position lies in the image, widened a little to reach the replicated border
            int u0 = Math.Clamp((int)Math.Ceiling(scale * -0.5 + cx) - 2, 0, side), u1 = Math.Clamp((int)Math.Ceiling(scale * (image.Width - 0.5) + cx) + 2, 0, side);
            int v0 = Math.Clamp((int)Math.Ceiling(scale * -0.5 + cy) - 2, 0, side), v1 = Math.Clamp((int)Math.Ceiling(scale * (image.Height - 0.5) + cy) + 2, 0, side);
            if (u1 - u0 < 1 || v1 - v0 < 1) continue;
            yield return (scale, cx, scale * (1 + (k % 3 == 0 ? 0.01 : 0)), cy, new Rect(u0, v0, u1 - u0, v1 - v0));
        }
    }

    private static Mat Image()
    {
        var path = Directory.GetFiles(Path.Combine(DataTestFiles.SharedData, "coco8", "images", "train"))[1];
        return Cv2.ImRead(path);
    }

    [Fact]
    public void EqualsOpenCvsClassicFixedPointWarp()
    {
        using var image = Image();
        const int side = 320;
        foreach (var (a, cx, b, cy, region) in Cases(image, side, 40))
        {
            using var expected = new Mat(side, side, MatType.CV_8UC3, new Scalar(114, 114, 114));
            Classic(image, expected, [a, 0, cx, 0, b, cy], region);
            foreach (var vector in new[] { true, false })
            {
                using var actual = new Mat(side, side, MatType.CV_8UC3, new Scalar(114, 114, 114));
                ScaleWarp.Apply(image, actual, a, cx, b, cy, region, vector);
                Assert.True(expected.AsSpan<byte>().SequenceEqual(actual.AsSpan<byte>()), $"a={a} cx={cx} cy={cy} {region} vector={vector}");
            }
        }
    }

    [Fact]
    public void EqualsTheOpenCvInUse()
    {
        using var image = Image();
        const int side = 320;
        long differing = 0, total = 0;
        var worst = 0;
        foreach (var (a, cx, b, cy, region) in Cases(image, side, 40))
        {
            using var expected = new Mat(side, side, MatType.CV_8UC3, new Scalar(114, 114, 114));
            using (var roi = new Mat(expected, region))
            using (var matrix = Mat.FromPixelData(2, 3, MatType.CV_64FC1, new[] { a, 0, cx - region.X, 0, b, cy - region.Y }))
                Cv2.WarpAffine(image, roi, matrix, region.Size, InterpolationFlags.Linear, BorderTypes.Replicate);
            using var actual = new Mat(side, side, MatType.CV_8UC3, new Scalar(114, 114, 114));
            ScaleWarp.Apply(image, actual, a, cx, b, cy, region);
            var e = expected.AsSpan<byte>();
            var o = actual.AsSpan<byte>();
            for (var i = 0; i < e.Length; i++)
            {
                var diff = Math.Abs(e[i] - o[i]);
                worst = Math.Max(worst, diff);
                if (diff > 0) differing++;
            }
            total += 3L * region.Width * region.Height;
        }
        Assert.True(worst == 0, $"max |Δ| {worst}, {differing} of {total} bytes differ");
    }
}
