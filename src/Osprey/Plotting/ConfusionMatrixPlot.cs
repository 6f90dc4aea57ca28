using System.Globalization;
using OpenCvSharp;
using Osprey.Evaluation;

namespace Osprey.Plotting;

/// <summary>
/// Ultralytics' confusion_matrix.png / confusion_matrix_normalized.png: the (nc + 1)² matrix as a "Blues" heatmap
/// (vmin 0, vmax the largest value), rows Predicted and columns True, the last of each being background; when
/// normalised each column (true class) is divided by its sum (+1e-9). Values below 0.005 stay blank; values are
/// printed in the cells when nc &lt; 30 (".2f" normalised, integers otherwise); class names label the axes when nc &lt; 99.
/// </summary>
internal static class ConfusionMatrixPlot
{
    public const int Width = 1200;
    public const int Height = 900;
    private const int MaxNameLength = 20;

    /// <summary>The plotted values [predicted, actual]: normalised by column or raw; NaN where below 0.005.</summary>
    public static double[,] Values(Evaluation.ConfusionMatrix matrix, bool normalize)
    {
        var counts = matrix.ToArray();
        int n = counts.GetLength(0);
        var values = new double[n, n];
        for (int a = 0; a < n; a++)
        {
            double column = 0;
            for (int p = 0; p < n; p++) column += counts[p, a];
            for (int p = 0; p < n; p++)
            {
                double v = normalize ? counts[p, a] / (column + 1e-9) : counts[p, a];
                values[p, a] = v < 0.005 ? double.NaN : v;
            }
        }
        return values;
    }

    /// <summary>The matrix cell rectangles' geometry for an nc: top-left of the matrix and cell size in pixels.</summary>
    public static (Point Origin, int Cell) Layout(int numClasses, IReadOnlyList<string> names)
    {
        int n = numClasses + 1;
        double labelScale = LabelScale(numClasses);
        int labelWidth = ShowNames(numClasses) ? Labels(numClasses, names).Max(l => Text.Measure(l, labelScale).Width) : 30;
        int left = 50 + labelWidth + 12, top = 60, bottom = labelWidth + 60;
        int side = Math.Min(Width - left - 170, Height - top - bottom);
        int cell = Math.Max(1, side / n);
        return (new Point(left, top), cell);
    }

    public static void Draw(Evaluation.ConfusionMatrix matrix, IReadOnlyList<string> names, string pngPath, bool normalize)
    {
        int nc = matrix.NumClasses, n = nc + 1;
        var values = Values(matrix, normalize);
        double vmax = 0;
        foreach (double v in values) if (!double.IsNaN(v)) vmax = Math.Max(vmax, v);
        if (vmax <= 0) vmax = 1;

        using var canvas = new Mat(Height, Width, MatType.CV_8UC3, Palette.White);
        var (origin, cell) = Layout(nc, names);
        int side = cell * n;
        double colorThreshold = 0.45 * (normalize ? 1 : vmax);
        double valueScale = Math.Clamp(cell / 80.0, 0.25, 0.55);
        for (int p = 0; p < n; p++)
            for (int a = 0; a < n; a++)
            {
                double v = values[p, a];
                var rect = new Rect(origin.X + a * cell, origin.Y + p * cell, cell, cell);
                if (double.IsNaN(v)) continue; // matplotlib leaves NaN cells transparent (white)
                Cv2.Rectangle(canvas, rect, Palette.Blues(v / vmax), -1);
                if (nc < 30)
                {
                    string text = normalize ? v.ToString("0.00", CultureInfo.InvariantCulture)
                        : ((long)Math.Round(v)).ToString(CultureInfo.InvariantCulture);
                    Text.Put(canvas, text, new Point(rect.X + cell / 2, rect.Y + cell / 2), valueScale,
                        v > colorThreshold ? Palette.White : Palette.Black, Text.Align.Center);
                }
            }
        Cv2.Rectangle(canvas, new Rect(origin.X, origin.Y, side, side), Palette.Black, 1);

        if (ShowNames(nc))
        {
            var labels = Labels(nc, names);
            double scale = LabelScale(nc);
            for (int i = 0; i < n; i++)
            {
                int centre = i * cell + cell / 2;
                Text.Put(canvas, labels[i], new Point(origin.X - 8, origin.Y + centre), scale, Palette.Black, Text.Align.Right);
                int width = Text.Measure(labels[i], scale).Width;
                Text.PutVertical(canvas, labels[i], new Point(origin.X + centre, origin.Y + side + 10 + width / 2), scale, Palette.Black);
            }
        }
        int maxLabel = ShowNames(nc) ? Labels(nc, names).Max(l => Text.Measure(l, LabelScale(nc)).Width) : 0;
        Text.Put(canvas, "True", new Point(origin.X + side / 2, origin.Y + side + maxLabel + 35), 0.6, Palette.Black, Text.Align.Center);
        Text.PutVertical(canvas, "Predicted", new Point(25, origin.Y + side / 2), 0.6, Palette.Black);
        Text.Put(canvas, normalize ? "Confusion Matrix Normalized" : "Confusion Matrix", new Point(origin.X + side / 2, 30), 0.7,
            Palette.Black, Text.Align.Center);
        ColorBar(canvas, new Rect(origin.X + side + 40, origin.Y, 24, side), vmax, normalize);
        PngFile.Write(pngPath, canvas);
    }

    private static void ColorBar(Mat canvas, Rect bar, double vmax, bool normalize)
    {
        for (int y = 0; y < bar.Height; y++)
        {
            double v = 1 - y / (double)Math.Max(1, bar.Height - 1);
            Cv2.Line(canvas, new Point(bar.Left, bar.Top + y), new Point(bar.Right - 1, bar.Top + y), Palette.Blues(v), 1);
        }
        Cv2.Rectangle(canvas, bar, Palette.Black, 1);
        var axes = new Axes(canvas, bar, 0, 1, 0, vmax);
        foreach (double t in Axes.NiceTicks(0, vmax, 6))
        {
            var p = axes.ToPixel(0, t);
            int y = (int)Math.Round(p.Y);
            Cv2.Line(canvas, new Point(bar.Right, y), new Point(bar.Right + 4, y), Palette.Black, 1);
            string label = t.ToString(normalize ? "0.0#" : "0.##", CultureInfo.InvariantCulture);
            Text.Put(canvas, label, new Point(bar.Right + 8, y), 0.45, Palette.Black);
        }
    }

    private static bool ShowNames(int nc) => nc > 0 && nc < 99;

    private static double LabelScale(int nc) => nc < 30 ? 0.45 : nc < 60 ? 0.35 : 0.28;

    private static string[] Labels(int nc, IReadOnlyList<string> names) =>
        Enumerable.Range(0, nc).Select(c => Truncate(PrecisionRecallPlot.NameOf(names, c))).Append("background").ToArray();

    private static string Truncate(string name) => name.Length <= MaxNameLength ? name : name[..MaxNameLength];
}
