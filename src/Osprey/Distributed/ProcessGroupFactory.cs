using TorchSharp;
using static TorchSharp.torch;

namespace Osprey.Distributed;

/// <summary>Chooses and starts the process group for a device and a launcher environment.</summary>
public static class ProcessGroupFactory
{
    /// <summary>
    /// <c>nccl</c> or <c>mpi</c>: use that backend even in a world of one (as <c>torch.distributed.init_process_group(backend,
    /// world_size=1)</c>), so that training runs every data-parallel collective on one rank: how the NCCL path is checked on
    /// a machine with one GPU (two ranks may not share a GPU). Unset, empty or <c>auto</c>: a world of one has no process
    /// group. MPI at world 1 still needs mpirun (<c>mpirun -np 1</c>).
    /// </summary>
    public const string BackendVariable = "OSPREY_PROCESS_GROUP";

    /// <summary>The backend <see cref="BackendVariable"/> forces (<c>nccl</c> or <c>mpi</c>), or null.</summary>
    /// <exception cref="DistributedException">The variable has another value.</exception>
    public static string? RequestedBackend() => RequestedBackend(Environment.GetEnvironmentVariable(BackendVariable));

    /// <summary>As <see cref="RequestedBackend()"/> for the variable's value <paramref name="value"/> (a pure function, for tests).</summary>
    public static string? RequestedBackend(string? value)
    {
        string text = (value ?? "").Trim().ToLowerInvariant();
        return text switch
        {
            "" or "auto" => null,
            "nccl" or "mpi" => text,
            _ => throw new DistributedException($"environment variable {BackendVariable}={value} is not one of nccl, mpi, auto"),
        };
    }

    /// <summary>Whether <paramref name="environment"/> needs a real process group: several ranks, or a backend forced by
    /// <see cref="BackendVariable"/> (otherwise <see cref="Create(DeviceType, DistributedEnvironment?, ProcessGroupOptions?, int?)"/>
    /// gives a <see cref="SingleProcessGroup"/>).</summary>
    public static bool NeedsGroup(DistributedEnvironment environment) => environment.IsDistributed || RequestedBackend() is not null;

    /// <summary>
    /// A world of one → <see cref="SingleProcessGroup"/>; CPU → <see cref="MpiProcessGroup"/> (needs mpirun);
    /// CUDA → <see cref="NcclProcessGroup"/> on GPU <paramref name="cudaDevice"/> (default: the local rank).
    /// </summary>
    /// <param name="device">Where the tensors to reduce live.</param>
    /// <param name="environment">The job; null reads this process's environment variables.</param>
    /// <param name="options">Timeout and failure handling.</param>
    /// <param name="cudaDevice">GPU index for NCCL; null = <see cref="DistributedEnvironment.LocalRank"/>.</param>
    /// <exception cref="DistributedException">The backend's library is missing or the launcher cannot serve the backend.</exception>
    public static IProcessGroup Create(DeviceType device, DistributedEnvironment? environment = null,
        ProcessGroupOptions? options = null, int? cudaDevice = null)
    {
        environment ??= DistributedEnvironment.FromProcess();
        options ??= new ProcessGroupOptions();
        if (!NeedsGroup(environment)) return new SingleProcessGroup { Timeout = options.Timeout };
        string? forced = RequestedBackend();
        string? serving = device switch { DeviceType.CPU => "mpi", DeviceType.CUDA => "nccl", _ => null };
        if (forced is not null && serving is not null && forced != serving)
            throw new DistributedException($"{BackendVariable}={forced}, but {device} tensors are reduced by {serving}: set {BackendVariable}={serving} or unset it");
        switch (device)
        {
            case DeviceType.CPU:
                if (environment.Launcher != LauncherKind.OpenMpi)
                    throw new DistributedException(
                        $"CPU training across {environment.WorldSize} process(es) uses MPI, but this process was started by " +
                        $"{environment.Launcher}, not mpirun: launch with nproc=N (Osprey runs mpirun) or mpirun -np N");
                return new MpiProcessGroup(options);
            case DeviceType.CUDA:
                if (!NcclProcessGroup.IsAvailable(out string error)) throw new DistributedException(error);
                return new NcclProcessGroup(environment, cudaDevice ?? environment.LocalRank, options);
            default:
                throw new DistributedException($"no process group for device type {device}: use CPU (MPI) or CUDA (NCCL)");
        }
    }

    /// <summary>As <see cref="Create(DeviceType, DistributedEnvironment?, ProcessGroupOptions?, int?)"/> for a torch device.</summary>
    public static IProcessGroup Create(Device device, DistributedEnvironment? environment = null, ProcessGroupOptions? options = null) =>
        Create(device.type, environment, options, device.type == DeviceType.CUDA && device.index >= 0 ? device.index : null);
}
