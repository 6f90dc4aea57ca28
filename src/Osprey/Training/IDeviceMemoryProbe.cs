namespace Osprey.Training;

/// <summary>A device's memory as AutoBatch reads it (bytes).</summary>
/// <param name="Name">The device's name (e.g. NVIDIA H100 80GB HBM3).</param>
/// <param name="Total">Total memory.</param>
/// <param name="Reserved">Ultralytics: torch.cuda.memory_reserved. Osprey's CUDA probe: all memory in use on the device
/// (TorchSharp exposes no allocator counters).</param>
/// <param name="Allocated">Ultralytics: torch.cuda.memory_allocated (counted on top of reserved in its free memory).
/// Osprey's CUDA probe: 0.</param>
public sealed record DeviceMemory(string Name, long Total, long Reserved, long Allocated);

/// <summary>What AutoBatch measures on a device; an interface so that its decisions can be tested without one.</summary>
public interface IDeviceMemoryProbe
{
    /// <summary>The device as Ultralytics names it in the log (<c>CUDA:0</c>).</summary>
    string DeviceName { get; }

    /// <summary>The device's memory before profiling.</summary>
    DeviceMemory Memory();

    /// <summary>Memory in use (GB, 10⁹ bytes, as Ultralytics' profiler reports) after a training forward and backward pass
    /// at <paramref name="batchSize"/> images; null when that failed (out of memory).</summary>
    double? Profile(int batchSize);
}
