using OpenCvSharp;
using Osprey.Training;

namespace Osprey.Plotting;

/// <summary>
/// Ultralytics' results.png for detection: a 2 × 5 grid of small charts of results.csv columns against epoch, each
/// the raw values (line with markers, matplotlib C0) and a gaussian_filter1d(σ = 3) smoothing (dotted, C1).
/// </summary>
internal static class ResultsPlot
{
    public const int Width = 1600;
    public const int Height = 800;
    private const int Columns = 5;

    /// <summary>The charted columns, in grid order (row-major), as Ultralytics lays them out.</summary>
    public static readonly IReadOnlyList<string> Charted = new[]
    {
        "train/box_loss", "train/cls_loss", "train/dfl_loss", "metrics/precision(B)", "metrics/recall(B)",
        "val/box_loss", "val/cls_loss", "val/dfl_loss", "metrics/mAP50(B)", "metrics/mAP50-95(B)",
    };

    public static void Draw(IReadOnlyList<IReadOnlyDictionary<string, double>> rows, string pngPath)
    {
        using var canvas = new Mat(Height, Width, MatType.CV_8UC3, Palette.White);
        int cellWidth = Width / Columns, cellHeight = Height / 2;
        for (int i = 0; i < Charted.Count; i++)
        {
            var cell = new Rect(i % Columns * cellWidth, i / Columns * cellHeight, cellWidth, cellHeight);
            Chart(canvas, cell, rows, Charted[i], legend: i == 1);
        }
        PngFile.Write(pngPath, canvas);
    }

    private static void Chart(Mat canvas, Rect cell, IReadOnlyList<IReadOnlyDictionary<string, double>> rows, string column, bool legend)
    {
        var area = new Rect(cell.X + 62, cell.Y + 36, cell.Width - 80, cell.Height - 80);
        var points = rows
            .Where(r => r.ContainsKey(column))
            .Select((r, k) => (X: r.TryGetValue("epoch", out double e) ? e : k + 1, Y: r[column]))
            .Where(p => double.IsFinite(p.X) && double.IsFinite(p.Y))
            .ToArray();
        var xs = points.Select(p => p.X).ToArray();
        var ys = points.Select(p => p.Y).ToArray();
        var smooth = GaussianFilter.Filter1D(ys, 3);

        double xMin = xs.DefaultIfEmpty(0).Min(), xMax = xs.DefaultIfEmpty(1).Max();
        var all = ys.Concat(smooth).DefaultIfEmpty(0).ToArray();
        double yMin = all.Min(), yMax = all.Max();
        if (xMax == xMin) { xMin -= 1; xMax += 1; }
        if (yMax == yMin) { double d = Math.Max(Math.Abs(yMin) * 0.1, 0.01); yMin -= d; yMax += d; }
        double xPad = 0.05 * (xMax - xMin), yPad = 0.05 * (yMax - yMin); // matplotlib's default 5 % margins
        var axes = new Axes(canvas, area, xMin - xPad, xMax + xPad, yMin - yPad, yMax + yPad);

        var xTicks = Axes.NiceTicks(axes.XMin, axes.XMax, 5).Where(t => xs.Length == 0 || Math.Abs(t - Math.Round(t)) < 1e-9).ToArray();
        var yTicks = Axes.NiceTicks(axes.YMin, axes.YMax, 6);
        axes.Grid(xTicks, yTicks);
        axes.Line(xs, ys, Palette.Cycle(0), 2);
        axes.Markers(xs, ys, Palette.Cycle(0), 3);
        axes.Line(xs, smooth, Palette.Cycle(1), 2, dotted: true);
        axes.Frame();
        axes.Ticks(xTicks, yTicks);
        axes.Title(column);
        Text.Put(canvas, "epoch", new Point(area.Left + area.Width / 2, area.Bottom + 30), 0.4, Palette.Black, Text.Align.Center);
        if (legend) Legend(canvas, new Point(area.Right - 92, area.Top + 8));
    }

    private static void Legend(Mat canvas, Point topLeft)
    {
        Cv2.Rectangle(canvas, new Rect(topLeft.X, topLeft.Y, 86, 40), new Scalar(210, 210, 210), 1);
        Cv2.Line(canvas, new Point(topLeft.X + 6, topLeft.Y + 12), new Point(topLeft.X + 26, topLeft.Y + 12), Palette.Cycle(0), 2, LineTypes.AntiAlias);
        Cv2.Circle(canvas, new Point(topLeft.X + 16, topLeft.Y + 12), 3, Palette.Cycle(0), -1, LineTypes.AntiAlias);
        Text.Put(canvas, "results", new Point(topLeft.X + 32, topLeft.Y + 12), 0.4, Palette.Black);
        for (int x = topLeft.X + 6; x < topLeft.X + 26; x += 5)
            Cv2.Line(canvas, new Point(x, topLeft.Y + 28), new Point(x + 1, topLeft.Y + 28), Palette.Cycle(1), 2, LineTypes.AntiAlias);
        Text.Put(canvas, "smooth", new Point(topLeft.X + 32, topLeft.Y + 28), 0.4, Palette.Black);
    }
}
