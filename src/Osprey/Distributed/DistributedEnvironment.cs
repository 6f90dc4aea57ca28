using System.Collections;
using System.Globalization;

namespace Osprey.Distributed;

/// <summary>Which launcher's variables described this process's place in the job.</summary>
public enum LauncherKind
{
    /// <summary>No launcher: a single process.</summary>
    None,

    /// <summary>torchrun-style variables (<c>RANK</c>, <c>WORLD_SIZE</c>, …), also set by Osprey's own spawn launcher.</summary>
    TorchRun,

    /// <summary>OpenMPI's <c>mpirun</c> (<c>OMPI_COMM_WORLD_*</c>).</summary>
    OpenMpi,

    /// <summary>Slurm's <c>srun</c> (<c>SLURM_PROCID</c>, <c>SLURM_NTASKS</c>, …).</summary>
    Slurm,
}

/// <summary>
/// This process's place in a data-parallel job, read from the launcher's environment variables.
/// Precedence: torchrun (<c>RANK</c>/<c>WORLD_SIZE</c>) over OpenMPI over Slurm (mpirun inside an sbatch script sees
/// the script's Slurm variables too); none of them means a single process.
/// </summary>
/// <param name="Rank">Global rank, 0 ≤ Rank &lt; WorldSize.</param>
/// <param name="WorldSize">Number of processes in the job.</param>
/// <param name="LocalRank">Rank among the processes on this host (selects the GPU).</param>
/// <param name="LocalWorldSize">Number of processes on this host.</param>
/// <param name="MasterAddress">Host of rank 0, for the TCP rendezvous.</param>
/// <param name="MasterPort">Port rank 0 listens on for the TCP rendezvous.</param>
/// <param name="Launcher">Which variables were found.</param>
public sealed record DistributedEnvironment(
    int Rank, int WorldSize, int LocalRank, int LocalWorldSize, string MasterAddress, int MasterPort, LauncherKind Launcher)
{
    /// <summary>Port used when <c>MASTER_PORT</c> is not set (torchrun's default).</summary>
    public const int DefaultMasterPort = 29500;

    /// <summary>A single process: rank 0 of 1.</summary>
    public static DistributedEnvironment Single { get; } = new(0, 1, 0, 1, "127.0.0.1", DefaultMasterPort, LauncherKind.None);

    /// <summary>More than one process.</summary>
    public bool IsDistributed => WorldSize > 1;

    /// <summary>Rank 0: the process that logs, validates and saves checkpoints.</summary>
    public bool IsMaster => Rank == 0;

    /// <summary>Reads this process's environment variables.</summary>
    public static DistributedEnvironment FromProcess()
    {
        var variables = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (DictionaryEntry entry in Environment.GetEnvironmentVariables())
            variables[(string)entry.Key] = entry.Value as string ?? "";
        return FromVariables(variables);
    }

    /// <summary>Reads the launcher variables from <paramref name="variables"/> (a pure function, for tests).</summary>
    /// <exception cref="DistributedException">A variable is malformed or the ranks are inconsistent.</exception>
    public static DistributedEnvironment FromVariables(IReadOnlyDictionary<string, string> variables)
    {
        string? Get(string name) => variables.TryGetValue(name, out string? value) && value.Trim().Length > 0 ? value.Trim() : null;
        int Int(string name, int fallback)
        {
            string? text = Get(name);
            if (text is null) return fallback;
            if (!int.TryParse(text, NumberStyles.Integer, CultureInfo.InvariantCulture, out int value) || value < 0)
                throw new DistributedException($"environment variable {name}={text} is not a non-negative integer");
            return value;
        }

        string masterAddress = Get("MASTER_ADDR") ?? "127.0.0.1";
        int masterPort = Int("MASTER_PORT", DefaultMasterPort);
        DistributedEnvironment result;
        if (Get("RANK") is not null && Get("WORLD_SIZE") is not null)
        {
            int worldSize = Int("WORLD_SIZE", 1);
            result = new(Int("RANK", 0), worldSize, Int("LOCAL_RANK", 0), Int("LOCAL_WORLD_SIZE", worldSize),
                masterAddress, masterPort, LauncherKind.TorchRun);
        }
        else if (Get("OMPI_COMM_WORLD_RANK") is not null && Get("OMPI_COMM_WORLD_SIZE") is not null)
        {
            int worldSize = Int("OMPI_COMM_WORLD_SIZE", 1);
            result = new(Int("OMPI_COMM_WORLD_RANK", 0), worldSize, Int("OMPI_COMM_WORLD_LOCAL_RANK", 0),
                Int("OMPI_COMM_WORLD_LOCAL_SIZE", worldSize), masterAddress, masterPort, LauncherKind.OpenMpi);
        }
        else if (Get("SLURM_PROCID") is not null && Get("SLURM_NTASKS") is not null)
        {
            int worldSize = Int("SLURM_NTASKS", 1);
            string? nodeList = Get("SLURM_STEP_NODELIST") ?? Get("SLURM_JOB_NODELIST") ?? Get("SLURM_NODELIST");
            string master = Get("MASTER_ADDR") ?? (nodeList is null ? "127.0.0.1" : SlurmNodeList.FirstHost(nodeList));
            result = new(Int("SLURM_PROCID", 0), worldSize, Int("SLURM_LOCALID", 0), SlurmLocalWorldSize(Get, worldSize),
                master, masterPort, LauncherKind.Slurm);
        }
        else
        {
            return Single;
        }

        if (result.WorldSize < 1 || result.Rank >= result.WorldSize)
            throw new DistributedException($"{result.Launcher} variables give rank {result.Rank} of world size {result.WorldSize}");
        if (result.LocalWorldSize < 1 || result.LocalRank >= result.LocalWorldSize)
            throw new DistributedException(
                $"{result.Launcher} variables give local rank {result.LocalRank} of local world size {result.LocalWorldSize}");
        return result;
    }

    // SLURM_NTASKS_PER_NODE is set only with --ntasks-per-node; SLURM_TASKS_PER_NODE looks like "2(x3),1" (this node's
    // count is not said; the first group is right for the usual homogeneous allocation).
    static int SlurmLocalWorldSize(Func<string, string?> get, int worldSize)
    {
        foreach (string name in new[] { "SLURM_NTASKS_PER_NODE", "SLURM_TASKS_PER_NODE" })
        {
            string? text = get(name);
            if (text is null) continue;
            string first = text.Split(',')[0].Split('(')[0];
            if (int.TryParse(first, NumberStyles.Integer, CultureInfo.InvariantCulture, out int count) && count > 0)
                return Math.Min(count, worldSize);
        }
        return worldSize;
    }
}
