using System.Diagnostics;

namespace Osprey.Benchmarks;

/// <summary>Timings of repeated runs, in milliseconds, with their mean, median and 90th percentile.</summary>
/// <param name="Milliseconds">Each timed run, in the order run.</param>
public sealed record LatencyStats(IReadOnlyList<double> Milliseconds)
{
    /// <summary>Arithmetic mean.</summary>
    public double Mean => Milliseconds.Average();

    /// <summary>Median (the mean of the two middle runs for an even count).</summary>
    public double Median => Percentile(50);

    /// <summary>90th percentile.</summary>
    public double P90 => Percentile(90);

    /// <summary>The <paramref name="percent"/>-th percentile, linearly interpolated between order statistics (numpy's default).</summary>
    public double Percentile(double percent)
    {
        if (Milliseconds.Count == 0) throw new InvalidOperationException("no timed runs");
        var sorted = Milliseconds.Order().ToArray();
        double rank = percent / 100 * (sorted.Length - 1);
        int below = (int)Math.Floor(rank);
        int above = Math.Min(below + 1, sorted.Length - 1);
        return sorted[below] + (rank - below) * (sorted[above] - sorted[below]);
    }
}

/// <summary>Wall-clock latency of an action: warm-up runs (not timed), then timed runs.</summary>
public static class Latency
{
    /// <summary>Runs <paramref name="action"/> <paramref name="warmup"/> times untimed, then <paramref name="runs"/> times timed.</summary>
    public static LatencyStats Measure(Action action, int warmup, int runs)
    {
        if (runs < 1) throw new ArgumentOutOfRangeException(nameof(runs), runs, "at least one timed run");
        for (int i = 0; i < warmup; i++) action();
        var times = new double[runs];
        for (int i = 0; i < runs; i++)
        {
            long start = Stopwatch.GetTimestamp();
            action();
            times[i] = Stopwatch.GetElapsedTime(start).TotalMilliseconds;
        }
        return new LatencyStats(times);
    }

    /// <summary>
    /// Like <see cref="Measure"/> for an action of two phases: it calls the lap it is given between them. Returns each
    /// run's first phase, second phase and whole, measured in the same runs.
    /// </summary>
    public static (LatencyStats First, LatencyStats Second, LatencyStats Total) MeasurePhases(Action<Action> action, int warmup, int runs)
    {
        if (runs < 1) throw new ArgumentOutOfRangeException(nameof(runs), runs, "at least one timed run");
        for (int i = 0; i < warmup; i++) action(() => { });
        var first = new double[runs];
        var total = new double[runs];
        for (int i = 0; i < runs; i++)
        {
            long start = Stopwatch.GetTimestamp();
            double lap = double.NaN;
            action(() => lap = Stopwatch.GetElapsedTime(start).TotalMilliseconds);
            total[i] = Stopwatch.GetElapsedTime(start).TotalMilliseconds;
            if (double.IsNaN(lap)) throw new InvalidOperationException("the action did not call its lap");
            first[i] = lap;
        }
        return (new LatencyStats(first), new LatencyStats(total.Zip(first, (t, f) => t - f).ToArray()), new LatencyStats(total));
    }
}
