using System.Globalization;
using OpenCvSharp;

namespace Osprey.Plotting;

/// <summary>
/// The plots of <c>osprey tune</c>, after Ultralytics' <c>plot_tune_results</c>: <c>tune_scatter_plots.png</c> (each
/// hyperparameter against fitness, points coloured by the density of a 20 × 20 histogram in viridis, the best trial marked
/// with a black +, titled <c>key = best value</c>) and <c>tune_fitness.png</c>, which adds to Ultralytics' fitness per
/// iteration (points and a gaussian-smoothed σ = 3 dotted line) a panel of each trial's fitness over its epochs, where
/// the trials ASHA stopped end early (marked ×).
/// </summary>
public static class TunePlots
{
    const int Cell = 400;

    /// <summary>tune_fitness.png, 2000 × 1000 px.</summary>
    /// <param name="perEpoch">Each trial's fitness per epoch, by trial index.</param>
    /// <param name="stopped">Which trials ASHA stopped.</param>
    /// <param name="final">The fitness of each ended trial, in trial order.</param>
    /// <param name="pngPath">Where to write.</param>
    public static void Fitness(IReadOnlyList<IReadOnlyList<double>> perEpoch, IReadOnlyList<bool> stopped, IReadOnlyList<double> final, string pngPath)
    {
        using var canvas = new Mat(1000, 2000, MatType.CV_8UC3, Palette.White);
        var left = new Rect(90, 60, 860, 840);
        double maxEpoch = Math.Max(1, perEpoch.Select(f => f.Count).DefaultIfEmpty(1).Max());
        var all = perEpoch.SelectMany(f => f).Where(double.IsFinite).DefaultIfEmpty(0).ToArray();
        var axes = Padded(canvas, left, 1, maxEpoch, all.Min(), all.Max());
        Frame(axes, "Fitness per trial over epochs", integerX: true);
        for (int t = 0; t < perEpoch.Count; t++)
        {
            var points = perEpoch[t].Select((f, e) => (X: e + 1.0, Y: f)).Where(p => double.IsFinite(p.Y)).ToArray();
            var (xs, ys) = (points.Select(p => p.X).ToArray(), points.Select(p => p.Y).ToArray());
            axes.Line(xs, ys, Palette.Cycle(t), 2);
            axes.Markers(xs, ys, Palette.Cycle(t), 3);
            if (stopped[t] && xs.Length > 0) Cross(canvas, axes.ToPixel(xs[^1], ys[^1]), Palette.Cycle(t), 7, diagonal: true);
        }
        Text.Put(canvas, "epoch", new Point(left.Left + left.Width / 2, left.Bottom + 34), 0.6, Palette.Black, Text.Align.Center);

        var right = new Rect(1090, 60, 860, 840);
        var iterations = Enumerable.Range(1, final.Count).Select(i => (double)i).ToArray();
        var smooth = GaussianFilter.Filter1D(final, 3);
        var values = final.Concat(smooth).DefaultIfEmpty(0).ToArray();
        var vs = Padded(canvas, right, 1, Math.Max(1, final.Count), values.Min(), values.Max());
        Frame(vs, "Fitness vs Iteration", integerX: true);
        vs.Markers(iterations, final, Palette.Cycle(0), 5);
        vs.Line(iterations, smooth, Palette.Cycle(1), 2, dotted: true);
        Text.Put(canvas, "Iteration", new Point(right.Left + right.Width / 2, right.Bottom + 34), 0.6, Palette.Black, Text.Align.Center);
        Text.PutVertical(canvas, "Fitness", new Point(30, left.Top + left.Height / 2), 0.6, Palette.Black);
        PngFile.Write(pngPath, canvas);
    }

    /// <summary>tune_scatter_plots.png: a ⌈√keys⌉-square grid of 400 px cells.</summary>
    /// <param name="keys">The hyperparameters.</param>
    /// <param name="values">Per ended trial, its values in the order of <paramref name="keys"/>.</param>
    /// <param name="fitness">Per ended trial, its fitness.</param>
    /// <param name="pngPath">Where to write.</param>
    public static void Scatter(IReadOnlyList<string> keys, IReadOnlyList<double[]> values, IReadOnlyList<double> fitness, string pngPath)
    {
        int n = Math.Max(1, (int)Math.Ceiling(Math.Sqrt(keys.Count)));
        using var canvas = new Mat(n * Cell, n * Cell, MatType.CV_8UC3, Palette.White);
        int best = fitness.Count == 0 ? -1 : fitness.Select((f, i) => (f, i)).MaxBy(p => p.f).i;
        for (int k = 0; k < keys.Count; k++)
        {
            var area = new Rect(k % n * Cell + 60, k / n * Cell + 40, Cell - 80, Cell - 90);
            var xs = values.Select(v => v[k]).ToArray();
            var axes = Padded(canvas, area, xs.DefaultIfEmpty(0).Min(), xs.DefaultIfEmpty(1).Max(),
                fitness.DefaultIfEmpty(0).Min(), fitness.DefaultIfEmpty(1).Max());
            string title = best < 0 ? keys[k] : $"{keys[k]} = {Short(xs[best])}";
            Frame(axes, title, integerX: false);
            var density = Density(xs, fitness);
            for (int i = 0; i < xs.Length; i++) axes.Markers(new[] { xs[i] }, new[] { fitness[i] }, Palette.Viridis(density[i]), 5);
            if (best >= 0) Cross(canvas, axes.ToPixel(xs[best], fitness[best]), Palette.Black, 12, diagonal: false);
        }
        PngFile.Write(pngPath, canvas);
    }

    // Each point's count in a 20 × 20 histogram of (x, y), scaled to [0, 1] over the points (matplotlib's colour norm).
    static double[] Density(IReadOnlyList<double> xs, IReadOnlyList<double> ys)
    {
        const int bins = 20;
        int Bin(double v, double lo, double hi) => hi > lo ? Math.Min(bins - 1, (int)((v - lo) / (hi - lo) * bins)) : 0;
        if (xs.Count == 0) return Array.Empty<double>();
        double xl = xs.Min(), xh = xs.Max(), yl = ys.Min(), yh = ys.Max();
        var counts = new int[bins, bins];
        var cells = xs.Select((x, i) => (Bin(x, xl, xh), Bin(ys[i], yl, yh))).ToArray();
        foreach (var (a, b) in cells) counts[a, b]++;
        var c = cells.Select(p => (double)counts[p.Item1, p.Item2]).ToArray();
        double lo = c.Min(), hi = c.Max();
        return c.Select(v => hi > lo ? (v - lo) / (hi - lo) : 0).ToArray();
    }

    // Axes over the data range with matplotlib's 5 % margins.
    static Axes Padded(Mat canvas, Rect area, double xMin, double xMax, double yMin, double yMax)
    {
        if (xMax <= xMin) (xMin, xMax) = (xMin - Math.Max(Math.Abs(xMin) * 0.1, 0.5), xMax + Math.Max(Math.Abs(xMax) * 0.1, 0.5));
        if (yMax <= yMin) (yMin, yMax) = (yMin - Math.Max(Math.Abs(yMin) * 0.1, 0.01), yMax + Math.Max(Math.Abs(yMax) * 0.1, 0.01));
        double xPad = 0.05 * (xMax - xMin), yPad = 0.05 * (yMax - yMin);
        return new Axes(canvas, area, xMin - xPad, xMax + xPad, yMin - yPad, yMax + yPad);
    }

    static void Frame(Axes axes, string title, bool integerX)
    {
        var xTicks = integerX ? WholeTicks(axes.XMin, axes.XMax) : Axes.NiceTicks(axes.XMin, axes.XMax, 5);
        var yTicks = Axes.NiceTicks(axes.YMin, axes.YMax, 6);
        axes.Grid(xTicks, yTicks);
        axes.Frame();
        axes.Ticks(xTicks, yTicks);
        axes.Title(title);
    }

    // Epochs and iterations: whole numbers, about eight of them.
    static double[] WholeTicks(double min, double max)
    {
        double step = Math.Max(1, Math.Ceiling((max - min) / 8));
        double first = Math.Ceiling(min / step) * step;
        return Enumerable.Range(0, (int)((max - first) / step) + 1).Select(i => first + i * step).ToArray();
    }

    static void Cross(Mat canvas, Point2d at, Scalar color, int size, bool diagonal)
    {
        var p = new Point((int)Math.Round(at.X), (int)Math.Round(at.Y));
        if (diagonal)
        {
            Cv2.Line(canvas, new Point(p.X - size, p.Y - size), new Point(p.X + size, p.Y + size), color, 2, LineTypes.AntiAlias);
            Cv2.Line(canvas, new Point(p.X - size, p.Y + size), new Point(p.X + size, p.Y - size), color, 2, LineTypes.AntiAlias);
            return;
        }
        Cv2.Line(canvas, new Point(p.X - size, p.Y), new Point(p.X + size, p.Y), color, 2, LineTypes.AntiAlias);
        Cv2.Line(canvas, new Point(p.X, p.Y - size), new Point(p.X, p.Y + size), color, 2, LineTypes.AntiAlias);
    }

    // Python's %.3g.
    static string Short(double value) => value.ToString("G3", CultureInfo.InvariantCulture).Replace("E", "e");
}
