using Osprey.Models;
using Osprey.Runtime;
using TorchSharp;
using static TorchSharp.torch;

namespace Osprey.Training;

/// <summary>
/// AutoBatch's probe on a CUDA device: a training-mode copy of the model runs forward and backward on empty
/// (b, 3, imgsz, imgsz) images, as Ultralytics' profiler, under the run's cast policy (Ultralytics profiles under
/// autocast: bf16/fp16 activations take half the memory of fp32), and the memory in use on the device is read from the CUDA
/// driver (total − free). TorchSharp has no empty_cache, so libtorch keeps the blocks it reserved: sizes are profiled
/// in increasing order, where each size's reservation contains the last one's, so what is read is still each size's
/// peak.
/// </summary>
public sealed class CudaMemoryProbe : IDeviceMemoryProbe, IDisposable
{
    readonly DetectionModel model;
    readonly Device device;
    readonly int imageSize;
    readonly CastPolicy policy;

    /// <summary>Profiles <paramref name="model"/> (owned) on <paramref name="device"/> at <paramref name="imageSize"/>
    /// under <paramref name="policy"/> (null: fp32, the model's plain forward).</summary>
    public CudaMemoryProbe(DetectionModel model, Device device, int imageSize, CastPolicy? policy = null)
    {
        (this.model, this.device, this.imageSize, this.policy) = (model, device, imageSize, policy ?? CastPolicy.Float32);
        model.UseCastPolicy(this.policy);
    }

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
                if (policy.ChannelsLast) images = CastPolicy.ToChannelsLast(images);
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
