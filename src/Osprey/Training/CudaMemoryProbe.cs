using Osprey.Models;
using Osprey.Runtime;
using TorchSharp;
using static TorchSharp.torch;

namespace Osprey.Training;

/// <summary>
/// AutoBatch's probe on a CUDA device: a training-mode copy of the model runs forward and backward on empty
/// (b, 3, imgsz, imgsz) images, as Ultralytics' profiler, and the memory in use on the device is read from the CUDA
/// driver (total − free). TorchSharp has no empty_cache, so libtorch keeps the blocks it reserved: sizes are profiled
/// in increasing order, where each size's reservation contains the last one's, so what is read is still each size's
/// peak.
/// </summary>
public sealed class CudaMemoryProbe(DetectionModel model, Device device, int imageSize) : IDeviceMemoryProbe, IDisposable
{
    /// <inheritdoc/>
    public string DeviceName => $"CUDA:{Environment.GetEnvironmentVariable("CUDA_VISIBLE_DEVICES")?.Trim().FirstOrDefault() ?? '0'}";

    /// <inheritdoc/>
    public DeviceMemory Memory()
    {
        var (free, total) = CudaDriver.Instance.MemoryInfo(device.index);
        return new DeviceMemory(CudaDriver.Instance.DeviceName(device.index), total, total - free, 0);
    }

    /// <inheritdoc/>
    public double? Profile(int batchSize)
    {
        try
        {
            using (var scope = NewDisposeScope())
            {
                model.train();
                var images = empty(batchSize, 3, imageSize, imageSize, device: device);
                var maps = model.ForwardFeatures(images);
                var total = maps.Select(m => m.sum()).Aggregate((x, y) => x + y);
                total.backward();
                model.zero_grad();
            }
            cuda.synchronize(device);
            var (free, all) = CudaDriver.Instance.MemoryInfo(device.index);
            return (all - free) / 1e9;
        }
        catch (Exception e) when (e is System.Runtime.InteropServices.ExternalException)
        {
            model.zero_grad();
            return null; // out of memory (or another CUDA failure at this size), as Ultralytics' profiler's None
        }
    }

    /// <summary>Frees the model copy.</summary>
    public void Dispose() => model.Dispose();
}
