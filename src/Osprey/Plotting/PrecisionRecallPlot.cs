using System.Globalization;
using OpenCvSharp;
using Osprey.Evaluation;

namespace Osprey.Plotting;

/// <summary>
/// Ultralytics' PR_curve.png: one thin line per class (matplotlib's colour cycle and a legend "name AP" when there
/// are at most 20 classes, plain grey otherwise), the mean curve thick blue "all classes 0.xxx mAP@0.5", axes 0..1.
/// </summary>
internal static class PrecisionRecallPlot
{
    public const int Width = 1200;
    public const int Height = 800;
    private const int MaxLegendClasses = 20;

    public static void Draw(IReadOnlyList<PrecisionRecallCurve> curves, IReadOnlyList<string> names, string pngPath, string iouLabel)
    {
        using var canvas = new Mat(Height, Width, MatType.CV_8UC3, Palette.White);
        var axes = new Axes(canvas, new Rect(90, 60, 660, 660), 0, 1, 0, 1);
        var ticks = new[] { 0.0, 0.2, 0.4, 0.6, 0.8, 1.0 };
        axes.Grid(ticks, ticks);

        bool legend = curves.Count is > 0 and <= MaxLegendClasses;
        var entries = new List<(string Label, Scalar Color, int Thickness)>();
        for (int k = 0; k < curves.Count; k++)
        {
            var color = legend ? Palette.Cycle(k) : Palette.Grey;
            axes.Line(curves[k].Recall, curves[k].Precision, color, 1);
            if (legend) entries.Add(($"{NameOf(names, curves[k].ClassId)} {Fixed3(curves[k].AP)}", color, 1));
        }
        double meanAp = curves.Count == 0 ? 0 : curves.Average(c => c.AP);
        if (curves.Count > 0)
        {
            var mean = Enumerable.Range(0, curves[0].Precision.Count).Select(j => curves.Average(c => c.Precision[j])).ToArray();
            axes.Line(curves[0].Recall, mean, Palette.Blue, 3);
        }
        entries.Add(($"all classes {Fixed3(meanAp)} mAP@{iouLabel}", Palette.Blue, 3));

        axes.Frame();
        axes.Ticks(ticks, ticks, 0.45);
        axes.Title("Precision-Recall Curve", 0.6);
        Text.Put(canvas, "Recall", new Point(axes.Area.Left + axes.Area.Width / 2, axes.Area.Bottom + 40), 0.55, Palette.Black, Text.Align.Center);
        Text.PutVertical(canvas, "Precision", new Point(axes.Area.Left - 62, axes.Area.Top + axes.Area.Height / 2), 0.55, Palette.Black);
        Legend(canvas, new Point(axes.Area.Right + 25, axes.Area.Top), entries);
        PngFile.Write(pngPath, canvas);
    }

    internal static string NameOf(IReadOnlyList<string> names, int classId) =>
        classId >= 0 && classId < names.Count ? names[classId] : classId.ToString(CultureInfo.InvariantCulture);

    private static string Fixed3(double value) => value.ToString("0.000", CultureInfo.InvariantCulture);

    private static void Legend(Mat canvas, Point topLeft, List<(string Label, Scalar Color, int Thickness)> entries)
    {
        const double scale = 0.45;
        const int row = 24;
        int width = 50 + entries.Max(e => Text.Measure(e.Label, scale).Width);
        width = Math.Min(width, canvas.Width - topLeft.X - 5);
        Cv2.Rectangle(canvas, new Rect(topLeft.X, topLeft.Y, width, row * entries.Count + 8), new Scalar(210, 210, 210), 1);
        for (int i = 0; i < entries.Count; i++)
        {
            int y = topLeft.Y + 4 + row * i + row / 2;
            Cv2.Line(canvas, new Point(topLeft.X + 8, y), new Point(topLeft.X + 38, y), entries[i].Color, entries[i].Thickness, LineTypes.AntiAlias);
            Text.Put(canvas, entries[i].Label, new Point(topLeft.X + 46, y), scale, Palette.Black);
        }
    }
}
