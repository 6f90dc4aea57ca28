using System.Globalization;
using OpenCvSharp;

namespace Osprey.Plotting;

/// <summary>One matplotlib-like axes on a canvas: maps data to pixels, draws frame, grid, ticks, lines.</summary>
internal sealed class Axes
{
    private const int Shift = 4;               // sub-pixel bits for antialiased drawing
    private const double One = 1 << Shift;

    private readonly Mat _canvas;

    public Axes(Mat canvas, Rect area, double xMin, double xMax, double yMin, double yMax)
    {
        _canvas = canvas;
        Area = area;
        (XMin, XMax, YMin, YMax) = (xMin, xMax == xMin ? xMin + 1 : xMax, yMin, yMax == yMin ? yMin + 1 : yMax);
    }

    public Rect Area { get; }
    public double XMin { get; }
    public double XMax { get; }
    public double YMin { get; }
    public double YMax { get; }

    public Point2d ToPixel(double x, double y) => new(
        Area.Left + (x - XMin) / (XMax - XMin) * (Area.Width - 1),
        Area.Bottom - 1 - (y - YMin) / (YMax - YMin) * (Area.Height - 1));

    public void Frame() => Cv2.Rectangle(_canvas, Area, Palette.Black, 1);

    public void Grid(IEnumerable<double> xs, IEnumerable<double> ys)
    {
        foreach (double x in xs) Segment(ToPixel(x, YMin), ToPixel(x, YMax), Palette.Grid, 1);
        foreach (double y in ys) Segment(ToPixel(XMin, y), ToPixel(XMax, y), Palette.Grid, 1);
    }

    /// <summary>Tick marks and labels outside the frame (x below, y left).</summary>
    public void Ticks(IReadOnlyList<double> xs, IReadOnlyList<double> ys, double scale = 0.4)
    {
        string xFormat = Format(xs), yFormat = Format(ys);
        foreach (double x in xs)
        {
            var p = ToPixel(x, YMin);
            Segment(new Point2d(p.X, Area.Bottom - 1), new Point2d(p.X, Area.Bottom + 3), Palette.Black, 1);
            Text.Put(_canvas, x.ToString(xFormat, CultureInfo.InvariantCulture), new Point((int)Math.Round(p.X), Area.Bottom + 12),
                scale, Palette.Black, Text.Align.Center);
        }
        foreach (double y in ys)
        {
            var p = ToPixel(XMin, y);
            Segment(new Point2d(Area.Left - 4, p.Y), new Point2d(Area.Left, p.Y), Palette.Black, 1);
            Text.Put(_canvas, y.ToString(yFormat, CultureInfo.InvariantCulture), new Point(Area.Left - 7, (int)Math.Round(p.Y)),
                scale, Palette.Black, Text.Align.Right);
        }
    }

    public void Title(string title, double scale = 0.5) =>
        Text.Put(_canvas, title, new Point(Area.Left + Area.Width / 2, Area.Top - 14), scale, Palette.Black, Text.Align.Center);

    /// <summary>A polyline through the points; <paramref name="dotted"/> draws matplotlib's ':' style.</summary>
    public void Line(IReadOnlyList<double> xs, IReadOnlyList<double> ys, Scalar color, int thickness, bool dotted = false)
    {
        var points = xs.Zip(ys, ToPixel).ToArray();
        if (points.Length == 0) return;
        if (points.Length == 1) { Dot(points[0], color, thickness); return; }
        if (!dotted)
        {
            Cv2.Polylines(_canvas, new[] { points.Select(Fixed).ToArray() }, false, color, thickness, LineTypes.AntiAlias, Shift);
            return;
        }
        // ':' = dots of length 1·lw every 2.65·lw (matplotlib's dotted pattern scaled by the line width).
        double on = Math.Max(1.5, thickness), period = 2.65 * Math.Max(1.5, thickness), travelled = 0;
        for (int i = 1; i < points.Length; i++)
        {
            var a = points[i - 1];
            var b = points[i];
            double length = Math.Sqrt((b.X - a.X) * (b.X - a.X) + (b.Y - a.Y) * (b.Y - a.Y));
            double start = travelled;
            travelled += length;
            if (length == 0) continue;
            // dashes that begin inside this segment (and the tail of one begun before)
            double first = Math.Floor(start / period) * period;
            for (double dash = first; dash < travelled; dash += period)
            {
                double from = Math.Max(dash, start), to = Math.Min(dash + on, travelled);
                if (to <= from) continue;
                var p = a + (b - a) * ((from - start) / length);
                var q = a + (b - a) * ((to - start) / length);
                Segment(p, q, color, thickness);
            }
        }
    }

    /// <summary>Filled circular markers at the points.</summary>
    public void Markers(IReadOnlyList<double> xs, IReadOnlyList<double> ys, Scalar color, int radius)
    {
        foreach (var p in xs.Zip(ys, ToPixel)) Dot(p, color, radius);
    }

    private void Dot(Point2d p, Scalar color, int radius) =>
        Cv2.Circle(_canvas, Fixed(p), (int)(radius * One), color, -1, LineTypes.AntiAlias, Shift);

    private void Segment(Point2d a, Point2d b, Scalar color, int thickness) =>
        Cv2.Line(_canvas, Fixed(a), Fixed(b), color, thickness, LineTypes.AntiAlias, Shift);

    private static Point Fixed(Point2d p) => new((int)Math.Round(p.X * One), (int)Math.Round(p.Y * One));

    /// <summary>A format with just enough decimals to tell the ticks apart.</summary>
    private static string Format(IReadOnlyList<double> ticks)
    {
        if (ticks.Count < 2) return "0.###";
        double step = Math.Abs(ticks[1] - ticks[0]);
        int decimals = step <= 0 ? 3 : Math.Clamp((int)Math.Ceiling(-Math.Log10(step) - 1e-9), 0, 6);
        if (step > 0 && Math.Abs(step * Math.Pow(10, decimals) - Math.Round(step * Math.Pow(10, decimals))) > 1e-6) decimals++;
        return decimals == 0 ? "0" : "0." + new string('0', decimals);
    }

    /// <summary>matplotlib-like "nice" ticks (steps 1, 2, 2.5, 5 × 10^k) inside [min, max], about <paramref name="target"/> of them.</summary>
    public static double[] NiceTicks(double min, double max, int target = 5)
    {
        if (!(max > min)) return new[] { min };
        double raw = (max - min) / Math.Max(1, target - 1);
        double magnitude = Math.Pow(10, Math.Floor(Math.Log10(raw)));
        double step = new[] { 1, 2, 2.5, 5, 10 }.Select(m => m * magnitude).First(s => s >= raw * 0.999);
        double first = Math.Ceiling(min / step - 1e-9);
        // Ticks by index, not by repeated addition: t += step stops advancing once step is below t's precision.
        long count = (long)Math.Floor(max / step + 1e-9 - first) + 1;
        if (!double.IsFinite(step) || step <= 0 || count < 1 || count > 1000) return new[] { min, max };
        var ticks = new double[count];
        for (long i = 0; i < count; i++) ticks[i] = (first + i) * step + 0.0; // + 0.0: no "-0"
        return ticks;
    }
}
