using System.Security.Cryptography;
using OpenCvSharp;

namespace Osprey.Tests.Data;

/// <summary>Paths and planted files for the data tests.</summary>
internal static class DataTestFiles
{
    /// <summary>The repository root (folder holding Osprey.sln), found by walking up from the test assembly.</summary>
    public static string RepoRoot
    {
        get
        {
            var dir = new DirectoryInfo(AppContext.BaseDirectory);
            while (dir is not null && !File.Exists(Path.Combine(dir.FullName, "Osprey.sln"))) dir = dir.Parent;
            return dir?.FullName ?? throw new DirectoryNotFoundException("Osprey.sln not found above the test assembly.");
        }
    }

    /// <summary>../shared/data beside the repository.</summary>
    public static string SharedData => Path.GetFullPath(Path.Combine(RepoRoot, "..", "shared", "data"));

    /// <summary>A fresh temporary folder.</summary>
    public static string NewTempDir()
    {
        var dir = Path.Combine(Path.GetTempPath(), "osprey-data-tests", Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(dir);
        return dir;
    }

    /// <summary>SHA-256 and mtime of every file under a folder.</summary>
    public static Dictionary<string, string> Fingerprint(string root) =>
        Directory.EnumerateFiles(root, "*", SearchOption.AllDirectories)
            .Where(f => !f.EndsWith(".osprey-labels.json", StringComparison.Ordinal))
            .ToDictionary(f => f, f => Convert.ToHexString(SHA256.HashData(File.ReadAllBytes(f))) + "@" + File.GetLastWriteTimeUtc(f).Ticks);

    /// <summary>BGR colour of class k in planted images.</summary>
    public static Scalar ClassColor(int k) => k switch
    {
        0 => new Scalar(0, 255, 0),
        1 => new Scalar(255, 0, 0),
        _ => new Scalar(0, 0, 255),
    };

    /// <summary>Writes an image of w×h with filled rectangles (class colour) where the label rows say, and its label file.</summary>
    public static void PlantImage(string root, string split, string name, int width, int height, params (int Cls, float Cx, float Cy, float W, float H)[] boxes)
    {
        var imageDir = Path.Combine(root, "images", split);
        var labelDir = Path.Combine(root, "labels", split);
        Directory.CreateDirectory(imageDir);
        Directory.CreateDirectory(labelDir);
        using var image = new Mat(height, width, MatType.CV_8UC3, new Scalar(40, 40, 40));
        var lines = new List<string>();
        foreach (var (cls, cx, cy, w, h) in boxes)
        {
            var x1 = (int)Math.Round((cx - w / 2) * width);
            var y1 = (int)Math.Round((cy - h / 2) * height);
            var x2 = (int)Math.Round((cx + w / 2) * width);
            var y2 = (int)Math.Round((cy + h / 2) * height);
            Cv2.Rectangle(image, new Rect(x1, y1, x2 - x1, y2 - y1), ClassColor(cls), -1);
            lines.Add(FormattableString.Invariant($"{cls} {(x1 + x2) / 2.0 / width} {(y1 + y2) / 2.0 / height} {(x2 - x1) / (double)width} {(y2 - y1) / (double)height}"));
        }
        Cv2.ImWrite(Path.Combine(imageDir, name + ".png"), image);
        File.WriteAllLines(Path.Combine(labelDir, name + ".txt"), lines);
    }

    /// <summary>A dataset of <paramref name="count"/> planted train images (and 2 val) with a YAML; returns the YAML path.</summary>
    public static string PlantDataset(string root, int count, int seed = 1)
    {
        var rng = new Random(seed);
        for (var i = 0; i < count; i++)
        {
            var w = 64 + rng.Next(64);
            var h = 64 + rng.Next(64);
            var boxes = Enumerable.Range(0, 1 + rng.Next(3)).Select(k =>
            {
                var bw = 0.15f + 0.2f * (float)rng.NextDouble();
                var bh = 0.15f + 0.2f * (float)rng.NextDouble();
                // keep boxes apart: one per horizontal third
                var cx = (k + 0.5f) / 3f;
                var cy = bh / 2 + (1 - bh) * (float)rng.NextDouble();
                return (rng.Next(3), cx, cy, bw, bh);
            }).ToArray();
            PlantImage(root, "train", $"img{i:D3}", w, h, boxes);
        }
        PlantImage(root, "val", "v0", 100, 60, (0, 0.5f, 0.5f, 0.3f, 0.4f));
        PlantImage(root, "val", "v1", 60, 100, (1, 0.3f, 0.3f, 0.2f, 0.2f), (2, 0.7f, 0.7f, 0.3f, 0.3f));
        var yaml = Path.Combine(root, "planted.yaml");
        File.WriteAllText(yaml, "path: .\ntrain: images/train\nval: images/val\nnames: [green, blue, red]\n");
        return yaml;
    }
}
