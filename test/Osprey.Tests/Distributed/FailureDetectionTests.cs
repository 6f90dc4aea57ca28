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
            Assert.True(ExitsWithin(int.Parse(File.ReadAllText(Path.Combine(folder, $"rank{rank}.pid"))), TimeSpan.FromSeconds(10)), $"rank {rank} still runs 10 s after the job ended");
    }

    [Theory]
    [InlineData(2)]
    [InlineData(3)]
    public void HungRankMakesTheOthersTimeOutAndAbortTheJob(int world)
    {
        string folder = TempFolder("hang");
        var watch = Stopwatch.StartNew();
        LaunchResult run = Run(world, "hang", folder);
        log.WriteLine($"exit {run.ExitCode} after {watch.Elapsed.TotalSeconds:0.0} s\n{run.Text}");

        Assert.False(run.TimedOut, run.Text);
        Assert.Equal(3, run.ExitCode); // the worker's MPI_Abort code, passed on by mpirun
        Assert.True(watch.Elapsed < TimeSpan.FromSeconds(60));
        Assert.Matches(@"rank [02] on host", run.Text);
        Assert.Contains("timed out after 3 s", run.Text);
        Assert.Contains("rank(s) 1 did not answer a liveness probe", run.Text);
        Assert.DoesNotContain("rank(s) 1, 2", run.Text); // rank 2 (np=3) is alive and answers
        for (int rank = 0; rank < world; rank++)
            Assert.True(ExitsWithin(int.Parse(File.ReadAllText(Path.Combine(folder, $"rank{rank}.pid"))), TimeSpan.FromSeconds(10)), $"rank {rank} still runs 10 s after the job ended");
        Assert.True(watch.Elapsed < TimeSpan.FromSeconds(60), $"every rank gone only after {watch.Elapsed.TotalSeconds:0.0} s");
    }
}
