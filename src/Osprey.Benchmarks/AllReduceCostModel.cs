using static Osprey.Benchmarks.AllReduceTiming;

namespace Osprey.Benchmarks;

/// <summary>
/// Ring all-reduce cost (the α–β model NCCL's ring follows): W ranks exchange 2(W − 1) chunks of n / W bytes, so
/// t(n, W) = 2(W − 1)·α + 2(W − 1)/W · n / B, with α the latency of one ring step and B the bus bandwidth
/// (nccl-tests' "busbw": the per-link rate a ring achieves, the same number for every W). An optional local term
/// c + d·n (what the same collective costs on one rank: launch, local copy and reduction) is added when α and B do not
/// come from a multi-rank measurement that already contains it.
/// </summary>
/// <param name="StepLatencySeconds">α: seconds per ring step (one chunk sent and received).</param>
/// <param name="BusBytesPerSecond">B: bus bandwidth in bytes per second.</param>
/// <param name="LocalSeconds">c: fixed seconds per all-reduce on top of the ring.</param>
/// <param name="LocalSecondsPerByte">d: seconds per buffer byte on top of the ring.</param>
public sealed record AllReduceCostModel(double StepLatencySeconds, double BusBytesPerSecond, double LocalSeconds = 0, double LocalSecondsPerByte = 0)
{
    /// <summary>Seconds to all-reduce <paramref name="bytes"/> over <paramref name="world"/> ranks (0 for one rank).</summary>
    public double Seconds(double bytes, int world) => world <= 1 ? 0
        : 2.0 * (world - 1) * StepLatencySeconds + BusFactor(world) * bytes / BusBytesPerSecond + LocalSeconds + LocalSecondsPerByte * bytes;

    /// <summary>
    /// Fits α and B to all-reduce times measured at <paramref name="world"/> ≥ 2 ranks: the line t = a + b·n through them
    /// (<see cref="FitLine"/>), then α = a / 2(W − 1) (clamped at 0: a negative intercept is noise) and B = 2(W − 1)/W / b.
    /// </summary>
    /// <exception cref="ArgumentException">Fewer than two distinct sizes, one rank, or times that do not grow with size.</exception>
    public static AllReduceCostModel Fit(IReadOnlyList<(double Bytes, double Seconds)> measured, int world)
    {
        if (world < 2) throw new ArgumentException("a ring cost model needs times measured at 2 or more ranks", nameof(world));
        var (intercept, slope) = FitLine(measured);
        return new AllReduceCostModel(Math.Max(intercept, 0) / (2.0 * (world - 1)), BusFactor(world) / slope);
    }

    /// <summary>
    /// The line t = a + b·n through the smallest and the largest buffer's times (as nccl-tests is read: latency from small
    /// messages, bandwidth from large ones; sizes in between do not move it); b must be positive.
    /// </summary>
    /// <exception cref="ArgumentException">Fewer than two distinct sizes, or times that do not grow with size.</exception>
    public static (double Intercept, double Slope) FitLine(IReadOnlyList<(double Bytes, double Seconds)> measured) => FitLine(measured, strict: true);

    /// <summary>As <see cref="FitLine(IReadOnlyList{ValueTuple{double, double}})"/>; with <paramref name="strict"/> false a
    /// slope ≤ 0 is returned instead of thrown.</summary>
    public static (double Intercept, double Slope) FitLine(IReadOnlyList<(double Bytes, double Seconds)> measured, bool strict)
    {
        if (measured.Select(m => m.Bytes).Distinct().Count() < 2)
            throw new ArgumentException("fitting latency and bandwidth needs at least two buffer sizes", nameof(measured));
        var small = measured.MinBy(m => m.Bytes);
        var large = measured.MaxBy(m => m.Bytes);
        double slope = (large.Seconds - small.Seconds) / (large.Bytes - small.Bytes);
        if (strict && !(slope > 0)) throw new ArgumentException("all-reduce times do not grow with the buffer size: cannot fit a bandwidth", nameof(measured));
        return (small.Seconds - slope * small.Bytes, slope);
    }
}
