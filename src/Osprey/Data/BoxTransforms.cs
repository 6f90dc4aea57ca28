namespace Osprey.Data;

/// <summary>Box geometry shared by the augmentations (pixel xyxy, 4 floats per box).</summary>
public static class BoxTransforms
{
    /// <summary>Normalised centre-xywh → pixel xyxy on a w×h image, then scaled by (sx, sy) and shifted by (dx, dy).</summary>
    public static float[] ToPixelXyxy(float[] xywhn, int width, int height, double sx = 1, double sy = 1, double dx = 0, double dy = 0)
    {
        var result = new float[xywhn.Length];
        for (var i = 0; i < xywhn.Length; i += 4)
        {
            double cx = xywhn[i] * width, cy = xywhn[i + 1] * height, w = xywhn[i + 2] * width, h = xywhn[i + 3] * height;
            result[i] = (float)((cx - w / 2) * sx + dx);
            result[i + 1] = (float)((cy - h / 2) * sy + dy);
            result[i + 2] = (float)((cx + w / 2) * sx + dx);
            result[i + 3] = (float)((cy + h / 2) * sy + dy);
        }
        return result;
    }

    /// <summary>Applies a 2×3 affine matrix to the 4 corners of each box and takes their bounds.</summary>
    public static float[] Affine(float[] xyxy, double[] m)
    {
        var result = new float[xyxy.Length];
        Span<double> xs = stackalloc double[4], ys = stackalloc double[4];
        for (var i = 0; i < xyxy.Length; i += 4)
        {
            double x1 = xyxy[i], y1 = xyxy[i + 1], x2 = xyxy[i + 2], y2 = xyxy[i + 3];
            (xs[0], ys[0]) = (m[0] * x1 + m[1] * y1 + m[2], m[3] * x1 + m[4] * y1 + m[5]);
            (xs[1], ys[1]) = (m[0] * x2 + m[1] * y1 + m[2], m[3] * x2 + m[4] * y1 + m[5]);
            (xs[2], ys[2]) = (m[0] * x2 + m[1] * y2 + m[2], m[3] * x2 + m[4] * y2 + m[5]);
            (xs[3], ys[3]) = (m[0] * x1 + m[1] * y2 + m[2], m[3] * x1 + m[4] * y2 + m[5]);
            result[i] = (float)Min4(xs);
            result[i + 1] = (float)Min4(ys);
            result[i + 2] = (float)Max4(xs);
            result[i + 3] = (float)Max4(ys);
        }
        return result;
    }

    /// <summary>Applies a 3×3 perspective matrix (row-major) to the 4 corners of each box and takes their bounds.</summary>
    public static float[] Perspective(float[] xyxy, double[] m)
    {
        var result = new float[xyxy.Length];
        Span<double> xs = stackalloc double[4], ys = stackalloc double[4];
        for (var i = 0; i < xyxy.Length; i += 4)
        {
            for (var c = 0; c < 4; c++)
            {
                double x = c is 0 or 3 ? xyxy[i] : xyxy[i + 2], y = c < 2 ? xyxy[i + 1] : xyxy[i + 3];
                var z = m[6] * x + m[7] * y + m[8];
                xs[c] = (m[0] * x + m[1] * y + m[2]) / z;
                ys[c] = (m[3] * x + m[4] * y + m[5]) / z;
            }
            result[i] = (float)Min4(xs);
            result[i + 1] = (float)Min4(ys);
            result[i + 2] = (float)Max4(xs);
            result[i + 3] = (float)Max4(ys);
        }
        return result;
    }

    private static double Min4(Span<double> v) => Math.Min(Math.Min(v[0], v[1]), Math.Min(v[2], v[3]));
    private static double Max4(Span<double> v) => Math.Max(Math.Max(v[0], v[1]), Math.Max(v[2], v[3]));

    /// <summary>Clips boxes in place to [0, width] × [0, height].</summary>
    public static void Clip(float[] xyxy, float width, float height)
    {
        for (var i = 0; i < xyxy.Length; i += 4)
        {
            xyxy[i] = Math.Clamp(xyxy[i], 0, width);
            xyxy[i + 1] = Math.Clamp(xyxy[i + 1], 0, height);
            xyxy[i + 2] = Math.Clamp(xyxy[i + 2], 0, width);
            xyxy[i + 3] = Math.Clamp(xyxy[i + 3], 0, height);
        }
    }

    /// <summary>Ultralytics <c>box_candidates</c>: after-augment box wider and taller than <paramref name="whThreshold"/> px,
    /// keeping more than <paramref name="areaThreshold"/> of its (scaled) area, aspect ratio below <paramref name="arThreshold"/>.</summary>
    public static bool IsCandidate(float[] before, float[] after, int i, double whThreshold = 2, double arThreshold = 100, double areaThreshold = 0.1)
    {
        const double eps = 1e-16;
        double w1 = before[i + 2] - before[i], h1 = before[i + 3] - before[i + 1];
        double w2 = after[i + 2] - after[i], h2 = after[i + 3] - after[i + 1];
        var ar = Math.Max(w2 / (h2 + eps), h2 / (w2 + eps));
        return w2 > whThreshold && h2 > whThreshold && w2 * h2 / (w1 * h1 + eps) > areaThreshold && ar < arThreshold;
    }

    /// <summary>Keeps the boxes selected by <paramref name="keep"/>.</summary>
    public static (int[] Classes, float[] Boxes) Select(int[] classes, float[] boxes, Func<int, bool> keep)
    {
        var c = new List<int>(classes.Length);
        var b = new List<float>(boxes.Length);
        for (var k = 0; k < classes.Length; k++)
        {
            if (!keep(k)) continue;
            c.Add(classes[k]);
            b.AddRange(boxes.AsSpan(k * 4, 4));
        }
        return (c.ToArray(), b.ToArray());
    }

    /// <summary>Pixel xyxy boxes → centre-xywh normalised by the image side.</summary>
    public static float[] ToNormalisedXywh(float[] xyxy, int side)
    {
        var result = new float[xyxy.Length];
        for (var i = 0; i < xyxy.Length; i += 4)
        {
            result[i] = (xyxy[i] + xyxy[i + 2]) / 2 / side;
            result[i + 1] = (xyxy[i + 1] + xyxy[i + 3]) / 2 / side;
            result[i + 2] = (xyxy[i + 2] - xyxy[i]) / side;
            result[i + 3] = (xyxy[i + 3] - xyxy[i + 1]) / side;
        }
        return result;
    }
}
