using TorchSharp;

namespace Osprey.Runtime;

/// <summary>A device request that cannot be met (no CUDA, index out of range, bad text).</summary>
public sealed class DeviceException(string message) : Exception(message);

/// <summary>
/// What <c>device=</c> asked for: the CPU, or one or more CUDA device indices (<c>0</c>, <c>0,1,2,3</c>,
/// <c>cuda</c> = <c>cuda:0</c>). More than one index means one process per GPU (data parallel).
/// </summary>
public sealed record DeviceRequest(bool IsCuda, IReadOnlyList<int> CudaIndices)
{
    /// <summary>The CPU.</summary>
    public static DeviceRequest Cpu { get; } = new(false, Array.Empty<int>());

    /// <summary>
    /// Parses <c>cpu</c>, <c>cuda</c>, <c>cuda:1</c>, <c>0</c>, <c>0,1</c>; null or empty means CUDA 0 when available,
    /// else the CPU (as Ultralytics does).
    /// </summary>
    public static DeviceRequest Parse(string? text)
    {
        string value = (text ?? "").Trim().ToLowerInvariant().Replace(" ", "");
        if (value.Length == 0) return TorchBackend.CudaAvailable ? new(true, new[] { 0 }) : Cpu;
        if (value == "cpu") return Cpu;
        if (value == "cuda") return new(true, new[] { 0 });
        if (value.StartsWith("cuda:", StringComparison.Ordinal)) value = value[5..];
        var indices = new List<int>();
        foreach (string part in value.Split(',', StringSplitOptions.RemoveEmptyEntries))
        {
            if (!int.TryParse(part, out int index) || index < 0)
                throw new DeviceException($"device={text} is not a device: use cpu, cuda, 0 or 0,1,2,3");
            if (indices.Contains(index)) throw new DeviceException($"device={text} names GPU {index} twice");
            indices.Add(index);
        }
        if (indices.Count == 0) throw new DeviceException($"device={text} is not a device: use cpu, cuda, 0 or 0,1,2,3");
        return new(true, indices);
    }

    /// <summary>
    /// Checks the request against this process's Torch backend and returns the torch device of local rank
    /// <paramref name="localRank"/> of <paramref name="localWorldSize"/> processes on this host (<see cref="CudaIndexFor"/>);
    /// fails with a clear message when CUDA is missing or an index does not exist.
    /// </summary>
    public torch.Device Resolve(int localRank = 0, int localWorldSize = 1)
    {
        if (!IsCuda) return torch.CPU;
        if (!TorchBackend.CudaAvailable)
            throw new DeviceException(
                $"device={string.Join(',', CudaIndices)} asks for CUDA, but CUDA is not available: this Osprey runs on " +
                $"{TorchBackend.Description}. Use device=cpu, or build with -p:TorchBackend=cuda and put a CUDA " +
                "libtorch (e.g. PyTorch's torch/lib) on LD_LIBRARY_PATH (see docs/gpu.md, 'Backends: CPU and CUDA').");
        return torch.device(DeviceType.CUDA, CudaIndexFor(CudaIndices, localRank, localWorldSize, torch.cuda.device_count()));
    }

    /// <summary>
    /// The GPU of local rank <paramref name="localRank"/>: with several indices, the rank's own (<c>device=0,1,2,3</c>);
    /// with one index (or <c>cuda</c>, or none given) and several processes on this host (mpirun, srun, torchrun), the GPU
    /// of the local rank, as Ultralytics' DDP workers take <c>cuda:LOCAL_RANK</c>, or GPU 0 where each process sees
    /// a single GPU (Slurm's <c>--gpus-per-task=1</c>); one process: the index given.
    /// </summary>
    /// <exception cref="DeviceException">The GPU does not exist here.</exception>
    public static int CudaIndexFor(IReadOnlyList<int> indices, int localRank, int localWorldSize, int visible)
    {
        int index = indices.Count > 1 ? indices[localRank % indices.Count]
            : localWorldSize > 1 ? (visible == 1 ? 0 : localRank)
            : indices[0];
        if (index >= visible)
            throw new DeviceException(indices.Count > 1 || localWorldSize <= 1
                ? $"device={string.Join(',', indices)}: GPU {index} does not exist (this machine has {visible})"
                : $"local rank {localRank} of {localWorldSize} takes GPU {localRank}, which does not exist (this machine has {visible}): " +
                  "start at most one process per GPU, or give device=… a list of GPUs to share");
        return index;
    }
}
