using System.Text.Json;
using Osprey.Distributed;

namespace Osprey.Tests.Distributed;

/// <summary>Starts test/Osprey.Distributed.Worker ranks and reads what they wrote.</summary>
internal static class WorkerRunner
{
    /// <summary>The worker's dll in its own build output (same configuration as these tests).</summary>
    public static string WorkerDll
    {
        get
        {
            string testFolder = AppContext.BaseDirectory.TrimEnd(Path.DirectorySeparatorChar); // …/test/Osprey.Tests/bin/<config>/<tfm>
            string framework = Path.GetFileName(testFolder);
            string configuration = Path.GetFileName(Path.GetDirectoryName(testFolder)!);
            string testRoot = Path.GetFullPath(Path.Combine(testFolder, "..", "..", "..", ".."));
            string dll = Path.Combine(testRoot, "Osprey.Distributed.Worker", "bin", configuration, framework, "Osprey.Distributed.Worker.dll");
            Assert.True(File.Exists(dll), $"worker not built: {dll} (build the solution first)");
            return dll;
        }
    }

    /// <summary>mpirun's path; fails the test with the fix when OpenMPI is missing.</summary>
    public static void RequireMpirun() =>
        Assert.True(LocalLauncher.FindMpirun() is not null, "mpirun not found: run build/install-deps.sh (installs openmpi-bin)");

    public static LaunchResult Run(int processCount, string scenario, string folder, LaunchMode mode = LaunchMode.Mpirun,
        TimeSpan? timeout = null, params string[] extra)
    {
        if (mode == LaunchMode.Mpirun) RequireMpirun();
        var options = LaunchOptions.ForDotnetDll(processCount, WorkerDll, new[] { scenario, folder }.Concat(extra)) with
        {
            Mode = mode,
            Timeout = timeout ?? TimeSpan.FromSeconds(90),
        };
        return LocalLauncher.RunAsync(options).GetAwaiter().GetResult();
    }

    public static JsonElement ReadRank(string folder, int rank)
    {
        string file = Path.Combine(folder, $"rank{rank}.json");
        Assert.True(File.Exists(file), $"rank {rank} wrote no results ({file})");
        return JsonDocument.Parse(File.ReadAllText(file)).RootElement;
    }

    public static float[] Floats(JsonElement results, string key) =>
        results.GetProperty(key).EnumerateArray().Select(e => e.GetSingle()).ToArray();

    public static long[] Longs(JsonElement results, string key) =>
        results.GetProperty(key).EnumerateArray().Select(e => e.GetInt64()).ToArray();

    /// <summary>
    /// True when <paramref name="pid"/> is gone within <paramref name="grace"/>: after mpirun reports the job over, a rank
    /// it killed (SIGTERM, then SIGKILL) may take a moment to finish exiting.
    /// </summary>
    public static bool ExitsWithin(int pid, TimeSpan grace)
    {
        var watch = System.Diagnostics.Stopwatch.StartNew();
        while (IsAlive(pid))
        {
            if (watch.Elapsed > grace) return false;
            Thread.Sleep(50);
        }
        return true;
    }

    /// <summary>True while the process exists and is not a zombie.</summary>
    public static bool IsAlive(int pid)
    {
        string stat = $"/proc/{pid}/stat";
        if (!File.Exists(stat)) return false;
        try
        {
            string text = File.ReadAllText(stat);
            char state = text[text.LastIndexOf(')') + 2];
            return state != 'Z' && state != 'X';
        }
        catch (IOException)
        {
            return false;
        }
    }

    public static string TempFolder(string name)
    {
        string folder = Path.Combine(Path.GetTempPath(), $"osprey-dist-{name}-{Guid.NewGuid():N}");
        Directory.CreateDirectory(folder);
        return folder;
    }
}

/// <summary>Multi-process tests share 2 cores: run them one after another.</summary>
[CollectionDefinition("multi-process", DisableParallelization = true)]
public sealed class MultiProcessCollection;
