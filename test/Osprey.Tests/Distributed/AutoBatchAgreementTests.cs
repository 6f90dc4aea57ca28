using Osprey.Distributed;
using Xunit.Abstractions;
using static Osprey.Tests.Distributed.WorkerRunner;

namespace Osprey.Tests.Distributed;

/// <summary>AutoBatch under data parallel: each rank decides on its own device, all take the smallest (mpirun, 2 ranks).</summary>
[Collection("multi-process")]
public class AutoBatchAgreementTests(ITestOutputHelper log)
{
    [Fact]
    public void RanksAgreeOnTheSmallestPerRankBatch()
    {
        string folder = TempFolder("autobatch");
        LaunchResult run = Run(2, "autobatch", folder);
        log.WriteLine($"exit {run.ExitCode} in {run.Elapsed.TotalSeconds:0.0} s\n{run.Text}");
        Assert.True(run.ExitCode == 0, run.Text);
        // rank 0: int((4 − 0.5) / 0.3) = 11; rank 1: int((4 − 0.5) / 0.6) = 5; both use 5 (global batch 10).
        var rank0 = ReadRank(folder, 0);
        var rank1 = ReadRank(folder, 1);
        Assert.Equal(11, rank0.GetProperty("mine").GetInt32());
        Assert.Equal(5, rank1.GetProperty("mine").GetInt32());
        Assert.Equal(5, rank0.GetProperty("agreed").GetInt32());
        Assert.Equal(5, rank1.GetProperty("agreed").GetInt32());
    }
}
