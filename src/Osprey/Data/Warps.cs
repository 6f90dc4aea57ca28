using OpenCvSharp;

namespace Osprey.Data;

/// <summary>The sample pipeline's 3×3 homogeneous matrices (row-major) and OpenCV warps.</summary>
internal static class Warps
{
    /// <summary>Ultralytics' padding colour (114, 114, 114).</summary>
    public static readonly Scalar Gray = new(114, 114, 114);

    /// <summary>Ultralytics <c>RandomPerspective.affine_transform</c>: M = T·S·R·P·C (row-major 3×3). Always consumes 8 draws.</summary>
    public static double[] AffineMatrix(AugmentOptions a, ref SampleRandom rng, int inputSide, int outputSide, out double gain)
    {
        var c = new double[] { 1, 0, -inputSide / 2.0, 0, 1, -inputSide / 2.0, 0, 0, 1 };
        var p = new double[] { 1, 0, 0, 0, 1, 0, rng.Uniform(-a.Perspective, a.Perspective), rng.Uniform(-a.Perspective, a.Perspective), 1 };
        var angle = rng.Uniform(-a.Degrees, a.Degrees) * Math.PI / 180;
        gain = rng.Uniform(1 - a.Scale, 1 + a.Scale);
        double alpha = gain * Math.Cos(angle), beta = gain * Math.Sin(angle);
        var r = new[] { alpha, beta, 0, -beta, alpha, 0, 0, 0, 1 };
        var sh = new double[] { 1, Math.Tan(rng.Uniform(-a.Shear, a.Shear) * Math.PI / 180), 0, Math.Tan(rng.Uniform(-a.Shear, a.Shear) * Math.PI / 180), 1, 0, 0, 0, 1 };
        var t = new double[] { 1, 0, rng.Uniform(0.5 - a.Translate, 0.5 + a.Translate) * outputSide, 0, 1, rng.Uniform(0.5 - a.Translate, 0.5 + a.Translate) * outputSide, 0, 0, 1 };
        return Multiply(t, Multiply(sh, Multiply(r, Multiply(p, c))));
    }

    public static bool IsAffine(double[] m) => m[6] == 0 && m[7] == 0 && m[8] == 1;

    public static double[] Multiply(double[] x, double[] y)
    {
        var z = new double[9];
        for (var i = 0; i < 3; i++)
            for (var j = 0; j < 3; j++)
                z[i * 3 + j] = x[i * 3] * y[j] + x[i * 3 + 1] * y[3 + j] + x[i * 3 + 2] * y[6 + j];
        return z;
    }

    /// <summary>Warps <paramref name="source"/> by <paramref name="m"/> (source → output coordinates) into the
    /// <paramref name="region"/> of <paramref name="output"/>.</summary>
    public static void Warp(Mat source, Mat output, double[] m, Rect region, BorderTypes border)
    {
        using var roi = new Mat(output, region);
        var shifted = (double[])m.Clone();
        // shift into region coordinates: subtract region origin (times the projective row for perspective)
        for (var j = 0; j < 3; j++)
        {
            shifted[j] -= region.X * m[6 + j];
            shifted[3 + j] -= region.Y * m[6 + j];
        }
        if (IsAffine(m))
        {
            using var matrix = Mat.FromPixelData(2, 3, MatType.CV_64FC1, shifted[..6]);
            Cv2.WarpAffine(source, roi, matrix, region.Size, InterpolationFlags.Linear, border, Gray);
        }
        else
        {
            using var matrix = Mat.FromPixelData(3, 3, MatType.CV_64FC1, shifted);
            Cv2.WarpPerspective(source, roi, matrix, region.Size, InterpolationFlags.Linear, border, Gray);
        }
    }
}

/// <summary>Where tile <c>t</c> of an Ultralytics mosaic lands: its rectangle on the 2s×2s canvas (a) and the crop of its
/// image (b), as <c>load_mosaic</c> computes them around the centre (xc, yc).</summary>
internal readonly record struct MosaicTile(int X1a, int Y1a, int X2a, int Y2a, int X1b, int Y1b, int X2b, int Y2b)
{
    /// <summary>Canvas x of the image's left edge.</summary>
    public int PadW => X1a - X1b;

    /// <summary>Canvas y of the image's top edge.</summary>
    public int PadH => Y1a - Y1b;

    /// <summary>True when the tile covers part of the canvas.</summary>
    public bool Visible => X2a > X1a && Y2a > Y1a;

    /// <summary>Tile <paramref name="t"/> (0 top-left, 1 top-right, 2 bottom-left, 3 bottom-right) of a w×h image.</summary>
    public static MosaicTile Of(int t, int xc, int yc, int w, int h, int s)
    {
        int x1a, y1a, x2a, y2a;
        switch (t)
        {
            case 0:
                (x1a, y1a, x2a, y2a) = (Math.Max(xc - w, 0), Math.Max(yc - h, 0), xc, yc);
                return new(x1a, y1a, x2a, y2a, w - (x2a - x1a), h - (y2a - y1a), w, h);
            case 1:
                (x1a, y1a, x2a, y2a) = (xc, Math.Max(yc - h, 0), Math.Min(xc + w, 2 * s), yc);
                return new(x1a, y1a, x2a, y2a, 0, h - (y2a - y1a), Math.Min(w, x2a - x1a), h);
            case 2:
                (x1a, y1a, x2a, y2a) = (Math.Max(xc - w, 0), yc, xc, Math.Min(2 * s, yc + h));
                return new(x1a, y1a, x2a, y2a, w - (x2a - x1a), 0, w, Math.Min(y2a - y1a, h));
            default:
                (x1a, y1a, x2a, y2a) = (xc, yc, Math.Min(xc + w, 2 * s), Math.Min(2 * s, yc + h));
                return new(x1a, y1a, x2a, y2a, 0, 0, Math.Min(w, x2a - x1a), Math.Min(y2a - y1a, h));
        }
    }
}
