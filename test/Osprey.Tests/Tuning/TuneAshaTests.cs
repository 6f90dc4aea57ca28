using Osprey.Tuning;

namespace Osprey.Tests.Tuning;

/// <summary>ASHA's rungs and stopping rule against values worked out by hand from Ray Tune's definition.</summary>
public class TuneAshaTests
{
    [Theory]
    [InlineData(1, 9, 3, new[] { 1, 3, 9 })]
    [InlineData(10, 100, 3, new[] { 10, 30, 90 })]       // Ultralytics' defaults for 100 epochs
    [InlineData(1, 10, 3, new[] { 1, 3, 9 })]
    [InlineData(3, 3, 3, new[] { 3 })]
    [InlineData(2, 20, 2, new[] { 2, 4, 8, 16 })]
    public void RungsAreGraceTimesPowersOfTheReductionFactorUpToMaxT(int grace, int maxT, int rf, int[] expected) =>
        Assert.Equal(expected, new Asha(grace, maxT, rf).Milestones);

    [Fact]
    public void StoppingRuleMatchesHandComputedRungs()
    {
        // grace 1, rf 3, max_t 9: rungs at epochs 1 and 3 judge (9 is max_t: a trial there is done). The cutoff of a rung is
        // numpy's linear 66.67th percentile of the values it recorded before: for n values sorted v0 ≤ … the virtual index
        // is n·(2/3) + 1/3 − 1 = (n − 1)·2/3.
        var asha = new Asha(gracePeriod: 1, maxT: 9, reductionFactor: 3);

        // rung 1 is empty: trial 0 continues, rung 1 = {0: 0.50}
        Assert.Equal(AshaDecision.Continue, asha.OnResult(0, 1, 0.50));
        // cutoff of {0.50} = 0.50; 0.30 < 0.50: stop; rung 1 = {0.50, 0.30}
        Assert.Equal(AshaDecision.Stop, asha.OnResult(1, 1, 0.30));
        // {0.30, 0.50}: index 2/3, between 0.30 and 0.50 → 0.50 − 0.20·(1/3) = 0.43333; 0.60 ≥ it: continue
        Assert.Equal(0.43333333, asha.Cutoff(1)!.Value, 8);
        Assert.Equal(AshaDecision.Continue, asha.OnResult(2, 1, 0.60));
        // {0.30, 0.50, 0.60}: index 4/3, between 0.50 and 0.60 → 0.50 + 0.10·(1/3) = 0.53333; 0.45 < it: stop
        Assert.Equal(0.53333333, asha.Cutoff(1)!.Value, 8);
        Assert.Equal(AshaDecision.Stop, asha.OnResult(3, 1, 0.45));
        // equal to the cutoff is not below it: {0.30, 0.45, 0.50, 0.60}: index 2 → exactly 0.50: continue
        Assert.Equal(AshaDecision.Continue, asha.OnResult(4, 1, 0.50));

        // trial 0 at epoch 2: rung 3 not reached, rung 1 already holds it: continue, nothing recorded
        Assert.Equal(AshaDecision.Continue, asha.OnResult(0, 2, 0.10));
        Assert.Equal(5, asha.Recorded[1].Count);
        // rung 3 is empty: trial 0 continues, rung 3 = {0: 0.70}
        Assert.Equal(AshaDecision.Continue, asha.OnResult(0, 3, 0.70));
        // trial 2 at epoch 3: cutoff of {0.70} = 0.70; 0.65 < 0.70: stop
        Assert.Equal(AshaDecision.Stop, asha.OnResult(2, 3, 0.65));
        // trial 4 at epoch 3: {0.65, 0.70} → 0.70 − 0.05·(1/3) = 0.68333; 0.69 ≥ it: continue
        Assert.Equal(AshaDecision.Continue, asha.OnResult(4, 3, 0.69));
        // max_t: done, and not recorded anywhere
        Assert.Equal(AshaDecision.Stop, asha.OnResult(0, 9, 0.01));
        Assert.Empty(asha.Recorded[9]);

        // a trial first heard of at epoch 4 (its earlier reports lost) is judged at the highest rung it reached, rung 3:
        // {0.65, 0.69, 0.70}: index 4/3 → 0.69 + 0.01·(1/3) = 0.69333; 0.69 < it: stop, recorded at rung 3 only
        Assert.Equal(AshaDecision.Stop, asha.OnResult(7, 4, 0.69));
        Assert.False(asha.Recorded[1].ContainsKey(7));
        Assert.Equal(0.69, asha.Recorded[3][7]);
    }

    [Fact]
    public void OnCompleteRecordsTheLastResultAtTheHighestRungNotYetRecorded()
    {
        var asha = new Asha(1, 9, 3);
        asha.OnResult(0, 1, 0.2);
        asha.OnComplete(0, 9, 0.9);                    // a trial that ran to max_t: recorded at rung 9 (Ray's on_trial_complete)
        Assert.Equal(0.9, asha.Recorded[9][0]);
        asha.OnComplete(1, 2, 0.4);                    // ended at epoch 2 (patience) before any report was judged: rung 1
        Assert.Equal(0.4, asha.Recorded[1][1]);
    }

    [Fact]
    public void RecordedRungsGivenBackDecideAsTheUninterruptedScheduler()
    {
        var reports = new (int Trial, int Epoch, double Value)[] { (0, 1, 0.5), (1, 1, 0.7), (0, 2, 0.5), (2, 1, 0.6), (1, 3, 0.8), (2, 3, 0.4) };
        var straight = new Asha(1, 9, 3);
        var decisions = reports.Select(r => straight.OnResult(r.Trial, r.Epoch, r.Value)).ToArray();

        var first = new Asha(1, 9, 3);
        var before = reports.Take(3).Select(r => first.OnResult(r.Trial, r.Epoch, r.Value)).ToArray();
        var resumed = new Asha(1, 9, 3, first.Recorded);     // as the tuner's state gives them back
        var after = reports.Skip(3).Select(r => resumed.OnResult(r.Trial, r.Epoch, r.Value));
        Assert.Equal(decisions, before.Concat(after).ToArray());
        Assert.Contains(AshaDecision.Stop, decisions);
    }

    [Fact]
    public void PercentileIsNumpysLinearNanPercentile()
    {
        Assert.Equal(2.5, Asha.Percentile(new[] { 4.0, 1, 3, 2 }, 50));             // np.percentile([1,2,3,4], 50)
        Assert.Equal(3.25, Asha.Percentile(new[] { 1.0, 2, 3, 4 }, 75));
        Assert.Equal(7.0, Asha.Percentile(new[] { 7.0 }, 66.66666666666667));
        Assert.Equal(2.0, Asha.Percentile(new[] { 1.0, double.NaN, 3 }, 50));       // NaN left out
        Assert.True(double.IsNaN(Asha.Percentile(new[] { double.NaN }, 50)));
        Assert.Equal(4.0, Asha.Percentile(new[] { 1.0, 2, 3, 4 }, 100));
        Assert.Equal(1.0, Asha.Percentile(new[] { 1.0, 2, 3, 4 }, 0));
    }

    [Fact]
    public void ArgumentsOutsideRaysAssertionsAreRejected()
    {
        Assert.Throws<ArgumentOutOfRangeException>(() => new Asha(0, 9));
        Assert.Throws<ArgumentOutOfRangeException>(() => new Asha(10, 9));
        Assert.Throws<ArgumentOutOfRangeException>(() => new Asha(1, 9, 1));
    }
}
