using System.Diagnostics;
using Osprey.Distributed;
using Xunit.Abstractions;
using static Osprey.Tests.Distributed.WorkerRunner;

namespace Osprey.Tests.Distributed;

/// <summary>A rank that dies or hangs takes the whole job down quickly and says which rank failed.</summary>
[Collection("multi-process")]
public class FailureDetectionTests(ITestOutputHelper log)
{
    [Fact]
    public void RankKilledMidCollectiveEndsTheJobAndIsNamed()
    {
        string folder = TempFolder("kill");
        LaunchResult run = Run(2, "kill", folder);
        long killedAt = long.Parse(File.ReadAllText(Path.Combine(folder, "killed_at_ms")));
        double detectionSeconds = (DateTimeOffset.UtcNow.ToUnixTimeMilliseconds() - killedAt) / 1000.0;
        log.WriteLine($"exit {run.ExitCode}, job {run.Elapsed.TotalSeconds:0.0} s, kill → all exited {detectionSeconds:0.00} s\n{run.Text}");

        Assert.False(run.TimedOut, run.Text);
        Assert.NotEqual(0, run.ExitCode);
        Assert.True(detectionSeconds < 60, $"took {detectionSeconds:0.0} s");
        Assert.Equal(1, run.FailedRank);
        Assert.Contains("rank 1", run.Text);
        Assert.False(File.Exists(Path.Combine(folder, "rank0.json")), "rank 0 finished although rank 1 died");
        foreach (int rank in new[] { 0, 1 })
            Assert.False(IsAlive(int.Parse(File.ReadAllText(Path.Combine(folder, $"rank{rank}.pid")))), $"rank {rank} still runs");
    }

    [Fact]
    public void HungRankMakesTheOthersTimeOutAndAbortTheJob()
    {
        string folder = TempFolder("hang");
        var watch = Stopwatch.StartNew();
        LaunchResult run = Run(2, "hang", folder);
        log.WriteLine($"exit {run.ExitCode} after {watch.Elapsed.TotalSeconds:0.0} s\n{run.Text}");

        Assert.False(run.TimedOut, run.Text);
        Assert.Equal(3, run.ExitCode); // the worker's MPI_Abort code, passed on by mpirun
        Assert.True(watch.Elapsed < TimeSpan.FromSeconds(60));
        Assert.Contains("rank 0 on host", run.Text);
        Assert.Contains("timed out after 3 s", run.Text);
        foreach (int rank in new[] { 0, 1 })
            Assert.False(IsAlive(int.Parse(File.ReadAllText(Path.Combine(folder, $"rank{rank}.pid")))), $"rank {rank} still runs");
    }
}
