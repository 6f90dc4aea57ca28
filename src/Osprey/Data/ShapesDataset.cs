using System.Globalization;
using System.Text;
using OpenCvSharp;

namespace Osprey.Data;

/// <summary>Size and seed of the built-in synthetic <c>shapes</c> dataset.</summary>
/// <param name="ImageSize">Square image side in pixels.</param>
/// <param name="TrainImages">Train images.</param>
/// <param name="ValImages">Val images.</param>
/// <param name="Seed">Generation seed (same seed = same files).</param>
public sealed record ShapesOptions(int ImageSize = 256, int TrainImages = 1000, int ValImages = 200, long Seed = 0);

/// <summary>
/// A procedural, learnable detection set: filled circles, rectangles, triangles, crosses and stars (one class each) in random
/// colours, 12–50 % of the image side, limited overlap, on noisy gradient backgrounds with thin clutter; a few pure backgrounds.
/// </summary>
public static class ShapesDataset
{
    /// <summary>Class names, index = class id.</summary>
    public static readonly IReadOnlyList<string> Names = ["circle", "rectangle", "triangle", "cross", "star"];

    private const string Version = "v1";

    /// <summary>Generates the set once (deterministically from the options) under the cache folder and returns its YAML path.
    /// Concurrent callers are safe: the set is built in a temporary folder and renamed into place.</summary>
    public static string EnsureGenerated(ShapesOptions options, string? cacheDirectory = null)
    {
        var root = Path.Combine(cacheDirectory ?? OspreyCacheDirectory.Root,
            $"shapes-{Version}-{options.ImageSize}px-{options.TrainImages}-{options.ValImages}-seed{options.Seed}");
        var yaml = Path.Combine(root, "shapes.yaml");
        if (File.Exists(yaml)) return yaml;
        var temp = $"{root}.{Environment.ProcessId}.{Guid.NewGuid():N}.tmp";
        try
        {
            Generate(temp, options);
            try
            {
                Directory.Move(temp, root);
            }
            catch (IOException) when (File.Exists(yaml))
            {
                // another process finished first
            }
        }
        finally
        {
            if (Directory.Exists(temp)) Directory.Delete(temp, recursive: true);
        }
        return yaml;
    }

    /// <summary>Writes the set (images, labels and <c>shapes.yaml</c>) into <paramref name="root"/>.</summary>
    public static void Generate(string root, ShapesOptions options)
    {
        foreach (var (split, count, splitId) in new[] { ("train", options.TrainImages, 0), ("val", options.ValImages, 1) })
        {
            var imageDir = Path.Combine(root, "images", split);
            var labelDir = Path.Combine(root, "labels", split);
            Directory.CreateDirectory(imageDir);
            Directory.CreateDirectory(labelDir);
            Parallel.For(0, count, i =>
            {
                var rng = SampleRandom.For(options.Seed, 1_000_000 + splitId, i);
                using var image = Draw(options.ImageSize, ref rng, out var label);
                var name = $"{split}_{i:D5}";
                Cv2.ImEncode(".jpg", image, out var jpeg, new ImageEncodingParam(ImwriteFlags.JpegQuality, 92));
                File.WriteAllBytes(Path.Combine(imageDir, name + ".jpg"), jpeg);
                File.WriteAllText(Path.Combine(labelDir, name + ".txt"), label);
            });
        }
        var yaml = new StringBuilder();
        yaml.AppendLine("# Osprey built-in synthetic shapes dataset (generated; safe to delete)");
        yaml.AppendLine("path: .");
        yaml.AppendLine("train: images/train");
        yaml.AppendLine("val: images/val");
        yaml.AppendLine("names:");
        for (var c = 0; c < Names.Count; c++) yaml.AppendLine(CultureInfo.InvariantCulture, $"  {c}: {Names[c]}");
        File.WriteAllText(Path.Combine(root, "shapes.yaml"), yaml.ToString());
    }

    /// <summary>Draws one image and returns it with its YOLO label text.</summary>
    public static Mat Draw(int size, ref SampleRandom rng, out string label)
    {
        var background = RandomColor(ref rng);
        var image = new Mat(size, size, MatType.CV_8UC3, background);
        // soft gradient: blend towards a second colour along a random direction
        {
            var second = RandomColor(ref rng);
            var horizontal = rng.NextDouble() < 0.5;
            var strength = rng.Uniform(0.0, 0.6);
            var pixels = image.AsSpan<byte>();
            for (var y = 0; y < size; y++)
                for (var x = 0; x < size; x++)
                {
                    var t = strength * (horizontal ? x : y) / size;
                    var o = (y * size + x) * 3;
                    pixels[o] = (byte)Math.Round(background.Val0 * (1 - t) + second.Val0 * t);
                    pixels[o + 1] = (byte)Math.Round(background.Val1 * (1 - t) + second.Val1 * t);
                    pixels[o + 2] = (byte)Math.Round(background.Val2 * (1 - t) + second.Val2 * t);
                }
        }
        // clutter: thin lines and small dots (well below the smallest object)
        var clutter = rng.NextInt(6);
        for (var k = 0; k < clutter; k++)
        {
            var p1 = new Point(rng.NextInt(size), rng.NextInt(size));
            if (rng.NextDouble() < 0.5)
                Cv2.Line(image, p1, new Point(rng.NextInt(size), rng.NextInt(size)), RandomColor(ref rng), 1, LineTypes.AntiAlias);
            else
                Cv2.Circle(image, p1, 1 + rng.NextInt(Math.Max(2, size / 64)), RandomColor(ref rng), -1, LineTypes.AntiAlias);
        }

        var lines = new StringBuilder();
        var placed = new List<Rect2d>();
        var objects = rng.NextDouble() < 0.05 ? 0 : 1 + rng.NextInt(4);
        for (var k = 0; k < objects; k++)
        {
            for (var attempt = 0; attempt < 20; attempt++)
            {
                var cls = rng.NextInt(Names.Count);
                var side = rng.Uniform(0.12, 0.5) * size;
                var aspect = cls == 1 ? rng.Uniform(0.55, 1.8) : 1.0;
                var w = side * Math.Sqrt(aspect);
                var h = side / Math.Sqrt(aspect);
                if (w > size * 0.6 || h > size * 0.6) continue;
                var x0 = rng.Uniform(1, size - w - 1);
                var y0 = rng.Uniform(1, size - h - 1);
                var box = new Rect2d(x0, y0, w, h);
                if (placed.Any(p => Overlap(p, box) > 0.1)) continue;
                var color = ContrastingColor(ref rng, image, box);
                var drawn = DrawShape(image, cls, box, color, ref rng);
                placed.Add(drawn);
                lines.AppendLine(string.Create(CultureInfo.InvariantCulture,
                    $"{cls} {(drawn.X + drawn.Width / 2) / size:F6} {(drawn.Y + drawn.Height / 2) / size:F6} {drawn.Width / size:F6} {drawn.Height / size:F6}"));
                break;
            }
        }
        // sensor noise (from our own stream, so generation is deterministic)
        {
            var sigma = rng.Uniform(0, 12);
            var pixels = image.AsSpan<byte>();
            for (var i = 0; i < pixels.Length; i++)
            {
                var n = sigma * 2 * (rng.NextDouble() + rng.NextDouble() + rng.NextDouble() - 1.5);
                pixels[i] = (byte)Math.Clamp(Math.Round(pixels[i] + n), 0, 255);
            }
        }
        label = lines.ToString();
        return image;
    }

    private static Rect2d DrawShape(Mat image, int cls, Rect2d box, Scalar color, ref SampleRandom rng)
    {
        double x0 = box.X, y0 = box.Y, w = box.Width, h = box.Height, cx = x0 + w / 2, cy = y0 + h / 2;
        Point[] poly;
        switch (cls)
        {
            case 0:
                Cv2.Circle(image, new Point((int)Math.Round(cx), (int)Math.Round(cy)), (int)Math.Round(w / 2), color, -1, LineTypes.AntiAlias);
                return new Rect2d(Math.Round(cx) - Math.Round(w / 2), Math.Round(cy) - Math.Round(w / 2), 2 * Math.Round(w / 2) + 1, 2 * Math.Round(w / 2) + 1);
            case 1:
                poly = [P(x0, y0), P(x0 + w, y0), P(x0 + w, y0 + h), P(x0, y0 + h)];
                break;
            case 2:
                var apexUp = rng.NextDouble() < 0.5;
                var apex = x0 + w * rng.Uniform(0.3, 0.7);
                poly = apexUp ? [P(apex, y0), P(x0 + w, y0 + h), P(x0, y0 + h)] : [P(apex, y0 + h), P(x0 + w, y0), P(x0, y0)];
                break;
            case 3:
                double t = w / 6;
                poly = [P(cx - t, y0), P(cx + t, y0), P(cx + t, cy - t), P(x0 + w, cy - t), P(x0 + w, cy + t), P(cx + t, cy + t),
                    P(cx + t, y0 + h), P(cx - t, y0 + h), P(cx - t, cy + t), P(x0, cy + t), P(x0, cy - t), P(cx - t, cy - t)];
                break;
            default:
                var rotation = rng.Uniform(0, 2 * Math.PI / 5);
                poly = Enumerable.Range(0, 10).Select(i =>
                {
                    var r = (i % 2 == 0 ? 0.5 : 0.2) * w;
                    var a = rotation + i * Math.PI / 5;
                    return P(cx + r * Math.Sin(a), cy - r * Math.Cos(a));
                }).ToArray();
                break;
        }
        Cv2.FillPoly(image, [poly], color, LineTypes.AntiAlias);
        int minX = poly.Min(p => p.X), maxX = poly.Max(p => p.X), minY = poly.Min(p => p.Y), maxY = poly.Max(p => p.Y);
        return new Rect2d(minX, minY, maxX - minX + 1, maxY - minY + 1);
    }

    private static Point P(double x, double y) => new((int)Math.Round(x), (int)Math.Round(y));

    private static Scalar RandomColor(ref SampleRandom rng) => new(rng.NextInt(256), rng.NextInt(256), rng.NextInt(256));

    private static Scalar ContrastingColor(ref SampleRandom rng, Mat image, Rect2d box)
    {
        var x = (int)Math.Clamp(box.X + box.Width / 2, 0, image.Width - 1);
        var y = (int)Math.Clamp(box.Y + box.Height / 2, 0, image.Height - 1);
        var under = image.At<Vec3b>(y, x);
        var color = RandomColor(ref rng);
        for (var i = 0; i < 10; i++)
        {
            var d = Math.Abs(color.Val0 - under.Item0) + Math.Abs(color.Val1 - under.Item1) + Math.Abs(color.Val2 - under.Item2);
            if (d > 180) break;
            color = RandomColor(ref rng);
        }
        return color;
    }

    private static double Overlap(Rect2d a, Rect2d b)
    {
        var iw = Math.Min(a.Right, b.Right) - Math.Max(a.Left, b.Left);
        var ih = Math.Min(a.Bottom, b.Bottom) - Math.Max(a.Top, b.Top);
        if (iw <= 0 || ih <= 0) return 0;
        var inter = iw * ih;
        return inter / Math.Min(a.Width * a.Height, b.Width * b.Height);
    }
}
