using Osprey.Distributed;

namespace Osprey.Tests.Distributed;

/// <summary>
/// CPU ranks started by <c>nproc=</c> (mpirun) share every core of the machine, each with cores / np torch threads:
/// mpirun's default binding (one core per rank for np ≤ 2) would leave each rank a single core however many there are.
/// </summary>
[Collection("multi-process")]
public class LauncherBindingTests
{
    [Fact]
    public async Task MpirunRanksMaySeeEveryCoreAndShareThemInThreads()
    {
        WorkerRunner.RequireMpirun();
        var lines = new List<string>();
        var options = new LaunchOptions(2, "/bin/sh", new[] { "-c", "echo threads=$OMP_NUM_THREADS cpus=$(grep Cpus_allowed_list /proc/self/status | cut -f2)" })
        {
            Timeout = TimeSpan.FromSeconds(60),
            Output = line => { lock (lines) lines.Add(line.Text); },
        };
        string? saved = Environment.GetEnvironmentVariable("OMP_NUM_THREADS");
        Environment.SetEnvironmentVariable("OMP_NUM_THREADS", null);
        LaunchResult result;
        try
        {
            result = await LocalLauncher.RunAsync(options);
        }
        finally
        {
            Environment.SetEnvironmentVariable("OMP_NUM_THREADS", saved);
        }
        Assert.Equal(0, result.ExitCode);
        string own = File.ReadAllLines("/proc/self/status").Single(l => l.StartsWith("Cpus_allowed_list:", StringComparison.Ordinal)).Split('\t')[1];
        string expected = $"threads={Math.Max(1, Environment.ProcessorCount / 2)} cpus={own}";
        var ranks = lines.Where(l => l.StartsWith("threads=", StringComparison.Ordinal)).ToArray();
        Assert.Equal(new[] { expected, expected }, ranks);
        Assert.Equal(Math.Max(1, Environment.ProcessorCount / 3), LocalLauncher.ThreadsPerRank(3));
        Assert.Equal(1, LocalLauncher.ThreadsPerRank(Environment.ProcessorCount + 1));
    }
}
