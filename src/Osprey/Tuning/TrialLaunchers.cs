using System.Globalization;

namespace Osprey.Tuning;

/// <summary>A place one trial runs in.</summary>
/// <param name="Index">The slot's number.</param>
/// <param name="Label">How the table shows it (<c>cpu 1/2</c>, <c>gpu 2,3</c>, <c>srun 0</c>, <c>node7 #1</c>).</param>
/// <param name="Device">The trial's <c>device=</c> (<c>cpu</c>, <c>0</c>, <c>2,3</c>).</param>
/// <param name="Threads">The trial's torch threads (OMP_NUM_THREADS) and its cap on loader workers; null leaves both alone.</param>
/// <param name="Host">The host (mpirun), or null.</param>
public sealed record TrialSlot(int Index, string Label, string Device, int? Threads, string? Host = null);

/// <summary>The program that runs one trial and its leading arguments (the CLI: the dotnet host, the CLI's dll,
/// <c>tune-trial</c>); the trial's <c>key=value</c> arguments follow.</summary>
public sealed record TrialProgram(string Executable, IReadOnlyList<string> Arguments);

/// <summary>A process to start for a trial: the executable, its arguments, and environment changes (a null value removes
/// the variable).</summary>
public sealed record TrialCommand(string Executable, IReadOnlyList<string> Arguments, IReadOnlyDictionary<string, string?> Environment);

/// <summary>Turns a trial into a command line for its slot: a local process, a Slurm job step, or mpirun on a host.</summary>
public interface ITrialLauncher
{
    /// <summary>One line for the start of the tune (what runs the trials).</summary>
    string Description { get; }

    /// <summary>The command that runs <paramref name="program"/> with <paramref name="trialArguments"/> in
    /// <paramref name="slot"/>; <paramref name="trialName"/> names it where the launcher can (a Slurm step).</summary>
    TrialCommand Command(TrialSlot slot, string trialName, TrialProgram program, IReadOnlyList<string> trialArguments);
}

/// <summary>
/// Trials as child processes of the tuner on this machine. A CPU slot caps the trial's torch threads (OMP_NUM_THREADS) so
/// that the slots share the cores; a GPU slot passes its GPUs as <c>device=</c>. The variables of a data-parallel launcher
/// the tuner may itself run under are removed, so that a trial is a job of its own.
/// </summary>
public sealed class LocalTrialLauncher : ITrialLauncher
{
    static readonly string[] LauncherVariables =
    {
        "RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE", "OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_SIZE",
        "OMPI_COMM_WORLD_LOCAL_RANK", "OMPI_COMM_WORLD_LOCAL_SIZE", "SLURM_PROCID", "SLURM_NTASKS",
    };

    /// <inheritdoc/>
    public string Description => "processes on this machine";

    /// <inheritdoc/>
    public TrialCommand Command(TrialSlot slot, string trialName, TrialProgram program, IReadOnlyList<string> trialArguments)
    {
        var environment = LauncherVariables.ToDictionary(v => v, _ => (string?)null);
        if (slot.Threads is { } threads) environment["OMP_NUM_THREADS"] = threads.ToString(CultureInfo.InvariantCulture);
        return new TrialCommand(program.Executable, program.Arguments.Concat(trialArguments).ToArray(), environment);
    }
}

/// <summary>
/// Trials as job steps inside a Slurm allocation (the tuner runs in the sbatch script): <c>srun --exclusive -N1 -n1
/// [--cpus-per-task=C] [--gpus-per-task=G] --job-name=NAME program …</c>, C and G the allocation's per-task resources
/// (<c>SLURM_CPUS_PER_TASK</c>, <c>SLURM_GPUS_PER_TASK</c>). <c>--exclusive</c> gives each step its own CPUs (and GPUs), so
/// steps beyond the allocation wait in Slurm rather than share; a step's trial sees its GPUs as 0 … G − 1.
/// </summary>
/// <param name="Srun">srun's path.</param>
/// <param name="JobId">SLURM_JOB_ID.</param>
/// <param name="CpusPerTask">CPUs per step, or null.</param>
/// <param name="GpusPerTask">GPUs per step (0: none).</param>
public sealed record SlurmTrialLauncher(string Srun, string JobId, int? CpusPerTask, int GpusPerTask) : ITrialLauncher
{
    /// <inheritdoc/>
    public string Description => $"Slurm job steps (srun --exclusive) in job {JobId}" +
        (CpusPerTask is { } c ? $", {c} CPUs" : "") + (GpusPerTask > 0 ? $", {GpusPerTask} GPU(s)" : "") + " per trial";

    /// <inheritdoc/>
    public TrialCommand Command(TrialSlot slot, string trialName, TrialProgram program, IReadOnlyList<string> trialArguments)
    {
        var arguments = new List<string> { "--exclusive", "-N1", "-n1" };
        if (CpusPerTask is { } cpus) arguments.Add($"--cpus-per-task={cpus.ToString(CultureInfo.InvariantCulture)}");
        if (GpusPerTask > 0) arguments.Add($"--gpus-per-task={GpusPerTask.ToString(CultureInfo.InvariantCulture)}");
        arguments.Add($"--job-name={trialName}");
        arguments.Add(program.Executable);
        arguments.AddRange(program.Arguments);
        arguments.AddRange(trialArguments);
        var environment = new Dictionary<string, string?>();
        if (slot.Threads is { } threads) environment["OMP_NUM_THREADS"] = threads.ToString(CultureInfo.InvariantCulture);
        return new TrialCommand(Srun, arguments, environment);
    }
}

/// <summary>
/// Trials on the hosts of an OpenMPI hostfile: <c>mpirun --allow-run-as-root -np 1 -H HOST --bind-to none
/// [-x OMP_NUM_THREADS] program …</c> (passwordless ssh, and the same paths and a shared run folder on every host).
/// </summary>
/// <param name="Mpirun">mpirun's path.</param>
/// <param name="Hostfile">The hostfile read.</param>
/// <param name="ExportThreads">Pass the tuner's OMP_NUM_THREADS on (<c>-x</c>) to the hosts.</param>
public sealed record MpirunTrialLauncher(string Mpirun, string Hostfile, bool ExportThreads) : ITrialLauncher
{
    /// <inheritdoc/>
    public string Description => $"mpirun -np 1 on the hosts of {Hostfile}";

    /// <inheritdoc/>
    public TrialCommand Command(TrialSlot slot, string trialName, TrialProgram program, IReadOnlyList<string> trialArguments)
    {
        var arguments = new List<string> { "--allow-run-as-root", "-np", "1", "-H", slot.Host!, "--bind-to", "none" };
        if (ExportThreads) arguments.AddRange(new[] { "-x", "OMP_NUM_THREADS" });
        arguments.Add(program.Executable);
        arguments.AddRange(program.Arguments);
        arguments.AddRange(trialArguments);
        return new TrialCommand(Mpirun, arguments, new Dictionary<string, string?>());
    }

    /// <summary>The hosts of an OpenMPI hostfile with their slots (<c>host slots=N</c>, or one slot; <c>#</c> comments).</summary>
    /// <exception cref="Osprey.Config.ArgumentsException">The file is missing, empty or has a bad line; the message names it.</exception>
    public static IReadOnlyList<(string Host, int Slots)> ReadHostfile(string path)
    {
        if (!File.Exists(path)) throw new Osprey.Config.ArgumentsException($"hostfile={path}: no such file");
        var hosts = new List<(string, int)>();
        string[] lines = File.ReadAllLines(path);
        for (int i = 0; i < lines.Length; i++)
        {
            string line = lines[i].Split('#')[0].Trim();
            if (line.Length == 0) continue;
            string[] parts = line.Split((char[]?)null, StringSplitOptions.RemoveEmptyEntries);
            int slots = 1;
            foreach (string part in parts.Skip(1))
                if (part.StartsWith("slots=", StringComparison.Ordinal)
                    && !(int.TryParse(part[6..], NumberStyles.None, CultureInfo.InvariantCulture, out slots) && slots > 0))
                    throw new Osprey.Config.ArgumentsException($"{path}: line {i + 1}: '{part}' is not slots=N with N ≥ 1");
            hosts.Add((parts[0], slots));
        }
        if (hosts.Count == 0) throw new Osprey.Config.ArgumentsException($"{path}: no hosts");
        return hosts;
    }
}

/// <summary>Finds programs on a PATH.</summary>
public static class ExecutablePath
{
    /// <summary>The first <paramref name="name"/> on the PATH of <paramref name="environment"/>, or null.</summary>
    public static string? Find(string name, IReadOnlyDictionary<string, string> environment)
    {
        string path = environment.TryGetValue("PATH", out string? value) ? value : "";
        foreach (string folder in path.Split(Path.PathSeparator, StringSplitOptions.RemoveEmptyEntries))
        {
            string candidate = Path.Combine(folder, name);
            if (File.Exists(candidate)) return candidate;
        }
        return null;
    }
}
