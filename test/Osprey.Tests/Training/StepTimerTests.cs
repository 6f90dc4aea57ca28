using System.Diagnostics;
using Osprey.Config;
using Osprey.Data;
using Osprey.Tests.Models;
using Osprey.Training;

namespace Osprey.Tests.Training;

/// <summary>
/// The step-time breakdown: laps partition each step (the phases add up to the wall time measured outside), the time
/// blocked in the loader is data wait, and on CUDA only sampled steps are synchronised and counted.
/// </summary>
public class StepTimerTests
{
    static IEnumerable<int> SlowSource(int count, int delayMs)
    {
        for (int i = 0; i < count; i++)
        {
            Thread.Sleep(delayMs);
            yield return i;
        }
    }

    [Fact]
    public void PhasesPartitionTheStepAndTheLoaderWaitIsDataWait()
    {
        var timer = new StepTimer();
        foreach (int _ in timer.Timed(SlowSource(1, 0))) timer.Lap(StepPhase.Forward); // compiled before the clock starts
        timer.TakeEpoch(0);
        var wall = Stopwatch.StartNew();
        foreach (int _ in timer.Timed(SlowSource(4, 30)))
        {
            Thread.Sleep(20);
            timer.Lap(StepPhase.Forward);
            Thread.Sleep(10);
            timer.Lap(StepPhase.Backward);
            Thread.Sleep(5);                         // after the last lap: Other
        }
        double elapsed = wall.Elapsed.TotalMilliseconds;
        StepTimes t = timer.TakeEpoch(1);
        Assert.Equal(4, t.Steps);
        Assert.False(t.Synchronized);
        // Sleeps last at least what they ask for; the phases add up to the wall time measured outside the loop.
        Assert.InRange(t[StepPhase.DataWait], 30, 1000);
        Assert.InRange(t[StepPhase.Forward], 20, 1000);
        Assert.InRange(t[StepPhase.Backward], 10, 1000);
        Assert.InRange(t[StepPhase.Other], 5, 1000);
        Assert.Equal(0, t[StepPhase.Loss]);
        Assert.Equal(0, t[StepPhase.AllReduce]);
        // (less the loop's own entry and exit, a few ms unless the thread is descheduled on a loaded machine)
        Assert.InRange(t.StepMilliseconds * t.Steps, elapsed * 0.9 - 10, elapsed);
        // A new epoch starts from zero.
        Assert.Equal(0, timer.TakeEpoch(2).Steps);
    }

    [Fact]
    public void OnlySampledStepsAreSynchronisedAndCounted()
    {
        int syncs = 0;
        var timer = new StepTimer(() => syncs++, every: 3);
        foreach (int _ in timer.Timed(SlowSource(7, 0)))
        {
            timer.Lap(StepPhase.Forward);
            timer.Lap(StepPhase.Backward);
        }
        StepTimes t = timer.TakeEpoch(1);
        // Steps 0, 3, 6 are sampled: each synchronises at its start and at its 4 laps (data wait, forward, backward, other).
        Assert.Equal(3, t.Steps);
        Assert.True(t.Synchronized);
        Assert.Equal(3 * 5, syncs);
        // Items passed over without a lap (a resumed epoch's skipped batches) are no steps.
        var skipping = new StepTimer();
        foreach (int i in skipping.Timed(SlowSource(6, 0)))
        {
            if (i < 4) continue;
            skipping.Lap(StepPhase.Forward);
        }
        Assert.Equal(2, skipping.TakeEpoch(1).Steps);
        // every = 0: never synchronise, every step counted.
        int never = 0;
        var host = new StepTimer(() => never++, every: 0);
        foreach (int _ in host.Timed(SlowSource(5, 0))) host.Lap(StepPhase.Forward);
        Assert.Equal(5, host.TakeEpoch(1).Steps);
        Assert.Equal(0, never);
    }

    [Fact]
    public void CsvRowHasTheMeansAndTheirSum()
    {
        string path = Path.Combine(TestModels.TempDir(), StepTimesCsv.FileName);
        var ms = new double[] { 1.5, 2, 30, 10, 40, 0, 5, 0.25 };
        StepTimesCsv.Append(path, new StepTimes(1, 63, ms, false));
        StepTimesCsv.Append(path, new StepTimes(2, 63, ms.Select(x => x * 2).ToArray(), true));
        string[] lines = File.ReadAllLines(path);
        Assert.Equal("epoch,steps,synchronized,step_ms,data_wait_ms,copy_ms,forward_ms,loss_ms,backward_ms,allreduce_ms,optimizer_ms,other_ms", lines[0]);
        Assert.Equal("1,63,0,88.75,1.5,2,30,10,40,0,5,0.25", lines[1]);
        Assert.Equal(177.5, StepTimesCsv.Read(path)[1]["step_ms"]);
    }
}
