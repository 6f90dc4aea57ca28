using System.Globalization;
using Osprey.Config;
using Osprey.Distributed;

namespace Osprey.Tuning;

/// <summary>
/// Where the trials run: the launcher and its slots, one trial per slot at a time. Chosen from the arguments and the
/// environment: <c>hostfile=</c> → mpirun on those hosts (one slot per host slot); else under Slurm (<c>SLURM_JOB_ID</c> set)
/// → job steps (one slot per task of the allocation); else this machine: with <c>device=</c> GPUs, each slot takes an equal
/// share of them (or several slots share a GPU), on the CPU each slot gets cores / slots torch threads.
/// <c>trials_at_once=</c> sets the number of slots (default: 1 on the CPU, one per GPU, <c>SLURM_NTASKS</c>, the hostfile's slots).
/// </summary>
/// <param name="Launcher">What starts a trial.</param>
/// <param name="Slots">The slots.</param>
public sealed record TrialPlacement(ITrialLauncher Launcher, IReadOnlyList<TrialSlot> Slots)
{
    /// <summary>The placement for <paramref name="args"/> in <paramref name="environment"/> on a machine of
    /// <paramref name="cores"/> cores.</summary>
    /// <exception cref="ArgumentsException">The request cannot be met (GPUs that do not split evenly, no srun, …).</exception>
    public static TrialPlacement Plan(OspreyArgs args, IReadOnlyDictionary<string, string> environment, int cores)
    {
        if (args.TrialsAtOnce is < 1) throw new ArgumentsException($"trials_at_once={args.TrialsAtOnce}: must be at least 1");
        if (args.Hostfile is { } hostfile) return OnHosts(args, hostfile, environment);
        if (Get(environment, "SLURM_JOB_ID") is { } job) return InSlurm(args, job, environment);
        return OnThisMachine(args, cores);
    }

    static TrialPlacement OnThisMachine(OspreyArgs args, int cores)
    {
        var device = args.DeviceOrDefault();
        if (!device.IsCuda)
        {
            int count = args.TrialsAtOnce ?? 1;
            int threads = Math.Max(1, cores / count);
            return new(new LocalTrialLauncher(), Enumerable.Range(0, count)
                .Select(i => new TrialSlot(i, $"cpu {i + 1}/{count}", "cpu", threads)).ToArray());
        }
        var groups = GpuGroups(device.CudaIndices, args.TrialsAtOnce ?? device.CudaIndices.Count);
        return new(new LocalTrialLauncher(), groups.Select((g, i) => new TrialSlot(i, $"gpu {g}", g, null)).ToArray());
    }

    static TrialPlacement InSlurm(OspreyArgs args, string job, IReadOnlyDictionary<string, string> environment)
    {
        string srun = ExecutablePath.Find("srun", environment)
            ?? throw new ArgumentsException($"SLURM_JOB_ID={job} is set, but srun is not on PATH: run osprey tune inside the sbatch script of an allocation");
        int tasks = Number(environment, "SLURM_NTASKS") ?? 1;
        int count = args.TrialsAtOnce ?? tasks;
        int? cpus = Number(environment, "SLURM_CPUS_PER_TASK");
        int? perTask = Get(environment, "SLURM_GPUS_PER_TASK") is { } text ? Number(text.Split(':')[^1], "SLURM_GPUS_PER_TASK") : null;
        int gpus = args.Device is { IsCuda: false } ? 0 : perTask ?? (args.Device is { IsCuda: true } d ? d.CudaIndices.Count : 0);
        string device = gpus > 0 ? string.Join(',', Enumerable.Range(0, gpus)) : "cpu";
        return new(new SlurmTrialLauncher(srun, job, cpus, gpus),
            Enumerable.Range(0, count).Select(i => new TrialSlot(i, $"srun {i}", device, cpus)).ToArray());
    }

    static TrialPlacement OnHosts(OspreyArgs args, string hostfile, IReadOnlyDictionary<string, string> environment)
    {
        var hosts = MpirunTrialLauncher.ReadHostfile(hostfile);
        string mpirun = LocalLauncher.FindMpirun()
            ?? throw new ArgumentsException($"hostfile={hostfile}: mpirun not found (install OpenMPI: apt-get install openmpi-bin)");
        int? threads = Number(environment, "OMP_NUM_THREADS");
        var device = args.Device ?? Runtime.DeviceRequest.Cpu; // the tuner's machine says nothing about the hosts' GPUs
        var perHost = hosts.Select(h => device.IsCuda ? GpuGroups(device.CudaIndices, h.Slots) : Enumerable.Repeat("cpu", h.Slots).ToList()).ToList();
        var slots = new List<TrialSlot>();
        for (int round = 0; slots.Count < hosts.Sum(h => h.Slots); round++)      // round-robin: few trials spread over hosts
            for (int h = 0; h < hosts.Count; h++)
                if (round < hosts[h].Slots)
                    slots.Add(new TrialSlot(slots.Count, $"{hosts[h].Host} #{round}", perHost[h][round], threads, hosts[h].Host));
        int count = args.TrialsAtOnce ?? slots.Count;
        if (count > slots.Count)
            throw new ArgumentsException($"trials_at_once={count}, but {hostfile} has {slots.Count} slot(s): add slots=N to its lines");
        return new(new MpirunTrialLauncher(mpirun, hostfile, threads is not null), slots.Take(count).ToArray());
    }

    /// <summary>The <c>device=</c> of each of <paramref name="count"/> slots sharing <paramref name="gpus"/>: an equal share
    /// each (count divides the GPUs), or count / GPUs slots per GPU (the GPUs divide count).</summary>
    /// <exception cref="ArgumentsException">Neither divides the other.</exception>
    public static IReadOnlyList<string> GpuGroups(IReadOnlyList<int> gpus, int count)
    {
        if (count <= gpus.Count && gpus.Count % count == 0)
        {
            int size = gpus.Count / count;
            return Enumerable.Range(0, count).Select(i => string.Join(',', gpus.Skip(i * size).Take(size))).ToArray();
        }
        if (count > gpus.Count && count % gpus.Count == 0)
            return Enumerable.Range(0, count).Select(i => gpus[i % gpus.Count].ToString(CultureInfo.InvariantCulture)).ToArray();
        throw new ArgumentsException($"trials_at_once={count} does not share device={string.Join(',', gpus)} evenly: " +
            $"use a divisor of {gpus.Count} (several GPUs per trial) or a multiple of it (several trials per GPU)");
    }

    static string? Get(IReadOnlyDictionary<string, string> environment, string name) =>
        environment.TryGetValue(name, out string? value) && value.Trim().Length > 0 ? value.Trim() : null;

    static int? Number(IReadOnlyDictionary<string, string> environment, string name) =>
        Get(environment, name) is { } text ? Number(text, name) : null;

    static int Number(string text, string name) =>
        int.TryParse(text.Split('(')[0], NumberStyles.None, CultureInfo.InvariantCulture, out int value) && value > 0
            ? value
            : throw new ArgumentsException($"environment variable {name}={text} is not a positive whole number");
}
