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
    /// <paramref name="localRank"/>; fails with a clear message when CUDA is missing or an index does not exist.
    /// </summary>
    public torch.Device Resolve(int localRank = 0)
    {
        if (!IsCuda) return torch.CPU;
        if (!TorchBackend.CudaAvailable)
            throw new DeviceException(
                $"device={string.Join(',', CudaIndices)} asks for CUDA, but CUDA is not available: this Osprey runs on " +
                $"{TorchBackend.Description}. Use device=cpu, or build with -p:TorchBackend=cuda and put a CUDA " +
                "libtorch (e.g. PyTorch's torch/lib) on LD_LIBRARY_PATH (see README, 'CUDA').");
        int count = torch.cuda.device_count();
        int index = CudaIndices[localRank % CudaIndices.Count];
        if (index >= count)
            throw new DeviceException($"device={string.Join(',', CudaIndices)}: GPU {index} does not exist (this machine has {count})");
        return torch.device(DeviceType.CUDA, index);
    }
}
