using System.Diagnostics;
using Osprey.Benchmarks;
using Osprey.Training;

namespace Osprey.Tests.Benchmarks;

/// <summary>The DDP benchmark's per-rank breakdown against a hand-made timeline of two ranks.</summary>
public class StepBreakdownTests
{
    // One step of one rank, times in ms: start, BN broadcast returned, buckets prepared, normaliser entered, normaliser
    // duration, loss done, loss items returned, backward done, gradient all-reduce entered and returned, sync done, end.
    static double[,] Step(params double[] ms)
    {
        var row = new double[1, StepBreakdown.Columns];
        for (int c = 0; c < ms.Length; c++)
            row[0, c] = c == StepBreakdown.NormaliserSeconds ? ms[c] / 1e3 : ms[c] / 1e3 * Stopwatch.Frequency;
        return row;
    }

    [Fact]
    public void WaitIsTheTimeUntilTheLastRankArrivesAndThePartsAddUpToTheStep()
    {
        // rank 1 reaches the normaliser 3 ms and the gradient all-reduce 5 ms after rank 0: rank 0 waits that long
        var rank0 = Step(0, 1, 2, 10, 5, 20, 21, 50, 52, 60, 61, 70);
        var rank1 = Step(0, 1, 2, 13, 2, 20, 21, 55, 57, 60, 61, 70);
        RankBreakdown[] b = StepBreakdown.Compute(new[] { rank0, rank1 }, collectives: true);

        Assert.Equal(new[] { "BN buffer broadcast", "loss normaliser", "loss items", "gradients" }, b[0].Collectives.Select(c => c.Name));
        // rank 0: BN 0 + 1, normaliser 3 + 2, items 0 + 1, gradients 5 + 3 (wait + transfer, ms)
        Assert.Equal(new[] { 0, 3, 0, 5.0 }, b[0].Collectives.Select(c => Math.Round(c.WaitSeconds * 1e3, 9)));
        Assert.Equal(new[] { 1, 2, 1, 3.0 }, b[0].Collectives.Select(c => Math.Round(c.TransferSeconds * 1e3, 9)));
        // rank 1 arrived last everywhere: no wait
        Assert.Equal(new[] { 0, 0, 0, 0.0 }, b[1].Collectives.Select(c => Math.Round(c.WaitSeconds * 1e3, 9)));
        Assert.Equal(new[] { 1, 2, 1, 3.0 }, b[1].Collectives.Select(c => Math.Round(c.TransferSeconds * 1e3, 9)));
        // copies: preparing the buckets (1 ms) + the gradient sync outside its all-reduce (11 − 8 and 6 − 3 ms)
        Assert.Equal(0.004, b[0].CopySeconds, 1e-12);
        Assert.Equal(0.004, b[1].CopySeconds, 1e-12);
        // compute = step − copies − collectives: 70 − 4 − 15 and 70 − 4 − 7
        Assert.Equal(0.051, b[0].ComputeSeconds, 1e-12);
        Assert.Equal(0.059, b[1].ComputeSeconds, 1e-12);
        foreach (RankBreakdown r in b)
        {
            Assert.Equal(0.070, r.StepSeconds, 1e-12);
            Assert.Equal(r.StepSeconds, r.ComputeSeconds + r.CopySeconds + r.WaitSeconds + r.TransferSeconds, 1e-12);
        }
    }

    [Fact]
    public void IndependentProcessesHaveNoCollectivesAndTheirStepIsComputeAndCopies()
    {
        var alone = Step(0, 0, 1, 1, 0, 30, 30, 60, 60, 60, 60, 65);
        RankBreakdown b = Assert.Single(StepBreakdown.Compute(new[] { alone }, collectives: false));
        Assert.Empty(b.Collectives);
        Assert.Equal(0.001, b.CopySeconds, 1e-12);
        Assert.Equal(0.064, b.ComputeSeconds, 1e-12);
    }
}
