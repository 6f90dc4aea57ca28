using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using Osprey.Distributed;
using Xunit.Abstractions;
using static Osprey.Tests.Distributed.WorkerRunner;

namespace Osprey.Tests.Distributed;

public class RendezvousTests
{
    static int FreePort() => LocalLauncher.FreePort();

    static readonly byte[] Id = Enumerable.Range(0, 128).Select(i => (byte)(255 - i)).ToArray();

    [Fact]
    public async Task ThreeThreadsReceiveRankZerosId()
    {
        int port = FreePort();
        // Rank 2 starts before rank 0 listens: it must retry.
        var late = Task.Run(() => TcpRendezvous.Broadcast(null, 128, 2, 3, "127.0.0.1", port, TimeSpan.FromSeconds(10)));
        Thread.Sleep(200);
        var master = Task.Run(() => TcpRendezvous.Broadcast(Id, 128, 0, 3, "127.0.0.1", port, TimeSpan.FromSeconds(10)));
        var other = Task.Run(() => TcpRendezvous.Broadcast(null, 128, 1, 3, "localhost", port, TimeSpan.FromSeconds(10)));
        Assert.Equal(Id, await master);
        Assert.Equal(Id, await other);
        Assert.Equal(Id, await late);
    }

    [Fact]
    public void TimesOutWhenNobodyListens()
    {
        var watch = Stopwatch.StartNew();
        var error = Assert.Throws<DistributedException>(
            () => TcpRendezvous.Broadcast(null, 128, 1, 2, "127.0.0.1", FreePort(), TimeSpan.FromSeconds(1)));
        Assert.InRange(watch.Elapsed.TotalSeconds, 0.9, 10);
        Assert.StartsWith("rank 1 on host ", error.Message);
        Assert.Contains("no answer from rank 0", error.Message);
    }

    [Fact]
    public void MasterTimesOutNamingTheMissingRanks()
    {
        var error = Assert.Throws<DistributedException>(
            () => TcpRendezvous.Broadcast(Id, 128, 0, 3, "127.0.0.1", FreePort(), TimeSpan.FromSeconds(0.5)));
        Assert.Contains("rank(s) 1, 2 never connected", error.Message);
    }

    [Fact]
    public async Task MismatchedWorldSizeIsRefused()
    {
        int port = FreePort();
        var master = Task.Run(() => TcpRendezvous.Broadcast(Id, 128, 0, 2, "127.0.0.1", port, TimeSpan.FromSeconds(3)));
        var error = Assert.Throws<DistributedException>(
            () => TcpRendezvous.Broadcast(null, 128, 1, 4, "127.0.0.1", port, TimeSpan.FromSeconds(3)));
        Assert.Contains("refused rank 1 of world size 4", error.Message);
        await Assert.ThrowsAsync<DistributedException>(() => master); // rank 1 of 2 never came
    }
}

/// <summary>Torchrun-style spawning: environment variables, rendezvous between processes, kill-on-failure.</summary>
[Collection("multi-process")]
public class SpawnLauncherTests(ITestOutputHelper log)
{
    [Fact]
    public void SpawnedProcessesRendezvousOverLoopback()
    {
        string folder = TempFolder("rendezvous");
        LaunchResult run = Run(2, "rendezvous", folder, LaunchMode.Spawn);
        log.WriteLine(run.Text);
        Assert.True(run.ExitCode == 0, run.Text);
        string expected = Convert.ToHexString(Enumerable.Range(0, 128).Select(i => (byte)(i * 7 + 3)).ToArray());
        Assert.Equal(expected, ReadRank(folder, 0).GetProperty("id").GetString());
        Assert.Equal(expected, ReadRank(folder, 1).GetProperty("id").GetString());
    }

    [Fact]
    public async Task OneFailingRankStopsTheOthers()
    {
        // Rank 1 fails after 0.2 s; rank 0 would sleep for a minute.
        var options = new LaunchOptions(2, "/bin/sh", new[] { "-c", "echo rank $RANK of $WORLD_SIZE port $MASTER_PORT; if [ $RANK = 1 ]; then sleep 0.2; exit 7; fi; sleep 60" })
        {
            Mode = LaunchMode.Spawn,
            Timeout = TimeSpan.FromSeconds(50),
        };
        LaunchResult run = await LocalLauncher.RunAsync(options);
        log.WriteLine(run.Text);
        Assert.Equal(7, run.ExitCode);
        Assert.Equal(1, run.FailedRank);
        Assert.False(run.TimedOut);
        Assert.True(run.Elapsed < TimeSpan.FromSeconds(20), $"took {run.Elapsed}");
        Assert.Contains(run.Output, line => line.Rank == 0 && line.Text.StartsWith("rank 0 of 2 port "));
        Assert.Contains("rank 1 exited with code 7", run.Text);
    }

    [Fact]
    public async Task TimeoutKillsEveryRank()
    {
        var options = new LaunchOptions(2, "/bin/sh", new[] { "-c", "sleep 60" }) { Mode = LaunchMode.Spawn, Timeout = TimeSpan.FromSeconds(1) };
        LaunchResult run = await LocalLauncher.RunAsync(options);
        Assert.True(run.TimedOut);
        Assert.Equal(124, run.ExitCode);
        Assert.True(run.Elapsed < TimeSpan.FromSeconds(20));
    }

    [Fact]
    public void PortIsMasterPortPlusOneUnderTorchrunOrTheVariable()
    {
        var none = new Dictionary<string, string>();
        Assert.Equal(29500, TcpRendezvous.Port(29500, k => none.GetValueOrDefault(k)));
        var torchrun = new Dictionary<string, string> { ["TORCHELASTIC_RUN_ID"] = "none" };
        Assert.Equal(29501, TcpRendezvous.Port(29500, k => torchrun.GetValueOrDefault(k)));   // torchrun's store has 29500
        var given = new Dictionary<string, string> { ["TORCHELASTIC_RUN_ID"] = "none", [TcpRendezvous.PortVariable] = "40000" };
        Assert.Equal(40000, TcpRendezvous.Port(29500, k => given.GetValueOrDefault(k)));
        var bad = new Dictionary<string, string> { [TcpRendezvous.PortVariable] = "70000" };
        var e = Assert.Throws<DistributedException>(() => TcpRendezvous.Port(29500, k => bad.GetValueOrDefault(k)));
        Assert.Contains("OSPREY_RENDEZVOUS_PORT=70000 is not a TCP port", e.Message);
    }
}
