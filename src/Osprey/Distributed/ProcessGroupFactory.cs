using TorchSharp;
using static TorchSharp.torch;

namespace Osprey.Distributed;

/// <summary>Chooses and starts the process group for a device and a launcher environment.</summary>
public static class ProcessGroupFactory
{
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
        if (!environment.IsDistributed) return new SingleProcessGroup { Timeout = options.Timeout };
        switch (device)
        {
            case DeviceType.CPU:
                if (environment.Launcher != LauncherKind.OpenMpi)
                    throw new DistributedException(
                        $"CPU training across {environment.WorldSize} processes uses MPI, but this process was started by " +
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
