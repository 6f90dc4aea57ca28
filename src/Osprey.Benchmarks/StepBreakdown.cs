using System.Diagnostics;

namespace Osprey.Benchmarks;

/// <summary>One collective of a data-parallel step, on one rank: waiting for the last rank to arrive, and the rest.</summary>
/// <param name="Name">What it is (BN buffer broadcast, loss normaliser, loss items, gradients).</param>
/// <param name="WaitSeconds">Mean per step: from this rank's arrival to the last rank's arrival (skew between the ranks).</param>
/// <param name="TransferSeconds">Mean per step: from the last arrival to this rank's return (the communication itself).</param>
public sealed record CollectiveBreakdown(string Name, double WaitSeconds, double TransferSeconds)
{
    /// <summary>Wait + transfer.</summary>
    public double Seconds => WaitSeconds + TransferSeconds;
}

/// <summary>
/// Where one rank's step time goes, means over the timed steps (so the parts add up to <see cref="StepSeconds"/>):
/// compute (forward, loss, backward, optimiser), gradient copies and bucket handling, and each collective split into
/// wait (skew) and transfer. Arrivals are compared on the machine's monotonic clock, so the split needs the ranks on
/// one machine (as <c>osprey bench ddp</c> starts them).
/// </summary>
/// <param name="Rank">The rank.</param>
/// <param name="StepSeconds">Mean step time of this rank.</param>
/// <param name="ComputeSeconds">Forward + loss (without its collective) + backward + clipping, SGD and EMA.</param>
/// <param name="CopySeconds">Gradients into and out of the flat buckets, zeroing and attaching bucket views.</param>
/// <param name="Collectives">The step's collectives in call order (none at world 1).</param>
public sealed record RankBreakdown(int Rank, double StepSeconds, double ComputeSeconds, double CopySeconds,
    IReadOnlyList<CollectiveBreakdown> Collectives)
{
    /// <summary>Σ waits of the collectives.</summary>
    public double WaitSeconds => Collectives.Sum(c => c.WaitSeconds);

    /// <summary>Σ transfers of the collectives.</summary>
    public double TransferSeconds => Collectives.Sum(c => c.TransferSeconds);
}

/// <summary>Per-step timestamps of one rank (<see cref="Stopwatch"/> ticks; durations in seconds) and their breakdown.</summary>
internal static class StepBreakdown
{
    // Columns of one step's record.
    public const int Start = 0, BuffersEnd = 1, PrepareEnd = 2, NormaliserEnter = 3, NormaliserSeconds = 4, LossEnd = 5,
        ItemsEnd = 6, BackwardEnd = 7, GradientsEnter = 8, GradientsExit = 9, SyncEnd = 10, End = 11, Columns = 12;

    public static readonly string[] CollectiveNames = { "BN buffer broadcast", "loss normaliser", "loss items", "gradients" };

    // the record column where a rank enters each collective of CollectiveNames (the BN broadcast begins the step)
    static readonly int[] EnterColumns = { Start, NormaliserEnter, LossEnd, GradientsEnter };

    static double Seconds(double ticks) => ticks / Stopwatch.Frequency;

    /// <summary>
    /// Breakdown of every rank from all ranks' records (<paramref name="records"/>[rank][step, column]). With one rank
    /// (or ranks that ran independently: <paramref name="collectives"/> false) there are no collectives.
    /// </summary>
    public static RankBreakdown[] Compute(double[][,] records, bool collectives)
    {
        int ranks = records.Length, steps = records[0].GetLength(0);
        var result = new RankBreakdown[ranks];
        for (int r = 0; r < ranks; r++)
        {
            double[,] s = records[r];
            double step = 0, compute = 0, copies = 0;
            var wait = new double[EnterColumns.Length];
            var transfer = new double[EnterColumns.Length];
            for (int i = 0; i < steps; i++)
            {
                double Duration(int from, int to) => Seconds(s[i, to] - s[i, from]);
                double stepSeconds = Duration(Start, End);
                var enter = Array.ConvertAll(EnterColumns, column => s[i, column]);
                var spent = new[]
                {
                    Duration(Start, BuffersEnd), s[i, NormaliserSeconds], Duration(LossEnd, ItemsEnd), Duration(GradientsEnter, GradientsExit),
                };
                double copy = Duration(BuffersEnd, PrepareEnd) + Duration(BackwardEnd, SyncEnd) - spent[3];
                step += stepSeconds;
                copies += copy;
                compute += stepSeconds - copy - spent.Sum();
                for (int c = 0; c < EnterColumns.Length; c++)
                {
                    // the last rank's arrival at this collective (same clock: one machine)
                    double last = Enumerable.Range(0, ranks).Max(q => records[q][i, EnterColumns[c]]);
                    double w = Math.Clamp(Seconds(last - enter[c]), 0, spent[c]);
                    wait[c] += w;
                    transfer[c] += spent[c] - w;
                }
            }
            var parts = collectives
                ? Enumerable.Range(0, EnterColumns.Length).Select(c => new CollectiveBreakdown(CollectiveNames[c], wait[c] / steps, transfer[c] / steps)).ToArray()
                : Array.Empty<CollectiveBreakdown>();
            if (!collectives) compute += transfer.Sum() + wait.Sum(); // nothing was communicated: it is all the rank's own work
            result[r] = new RankBreakdown(r, step / steps, compute / steps, copies / steps, parts);
        }
        return result;
    }
}
