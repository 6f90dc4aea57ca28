using Osprey.Runtime;
using TorchSharp;
using static TorchSharp.torch;

namespace Osprey.Data;

/// <summary>
/// One collated batch (CPU tensors, pinned when the loader pins; owned: dispose it, with its device copies). <see cref="Images"/> uint8 (B, 3, H, W) RGB; the targets are
/// flattened over the batch: <see cref="BatchIndex"/> (N) int64, <see cref="Classes"/> (N) float32,
/// <see cref="Boxes"/> (N, 4) float32 normalised centre-xywh.
/// </summary>
public sealed class Batch : IDisposable
{
    Tensor[]? _onDevice; // Images, BatchIndex, Classes, Boxes on a device (CopyTo)

    /// <summary>Images, uint8 (B, 3, H, W), RGB.</summary>
    public Tensor Images { get; }

    /// <summary>Image index in the batch of each box, int64 (N).</summary>
    public Tensor BatchIndex { get; }

    /// <summary>Class of each box, float32 (N).</summary>
    public Tensor Classes { get; }

    /// <summary>Boxes, float32 (N, 4), normalised centre-xywh.</summary>
    public Tensor Boxes { get; }

    /// <summary>Per image: source path, original size, ratio and pad.</summary>
    public IReadOnlyList<ImageInfo> Infos { get; }

    /// <summary>Epoch the batch belongs to.</summary>
    public int Epoch { get; }

    /// <summary>Position of the batch in its epoch.</summary>
    public int Index { get; }

    /// <summary>Number of images.</summary>
    public int Size => Infos.Count;

    internal Batch(Tensor images, Tensor batchIndex, Tensor classes, Tensor boxes, IReadOnlyList<ImageInfo> infos, int epoch, int index)
    {
        (Images, BatchIndex, Classes, Boxes, Infos, Epoch, Index) = (images, batchIndex, classes, boxes, infos, epoch, index);
    }

    /// <summary>True when the tensors live in page-locked (pinned) host memory, so device copies can be asynchronous.</summary>
    public bool IsPinned => Images.is_pinned();

    /// <summary>
    /// Starts copying the batch to <paramref name="device"/> (non-blocking: asynchronous from pinned memory) and keeps the
    /// copies, owned by the batch, for <see cref="ImagesAsFloat"/> and the <c>…On</c> accessors. See <see cref="DevicePrefetch"/>.
    /// </summary>
    public void CopyTo(Device device)
    {
        if (_onDevice is not null) return;
        _onDevice = new[] { Images, BatchIndex, Classes, Boxes }
            .Select(t => t.to(device, copy: true, non_blocking: true).DetachFromDisposeScope()).ToArray();
    }

    /// <summary>The device of the copies made by <see cref="CopyTo"/>, or null.</summary>
    public Device? CopiedTo => _onDevice?[0].device;

    /// <summary>The images as float32 in [0, 1] on <paramref name="device"/> (copied as uint8, converted there).</summary>
    public Tensor ImagesAsFloat(Device device)
    {
        if (Copied(0, device) is { } images) return images.to(ScalarType.Float32).div_(Scalars.Of(255));
        using var moved = Images.to(device);
        return moved.to(ScalarType.Float32).div_(Scalars.Of(255));
    }

    /// <summary><see cref="BatchIndex"/> on <paramref name="device"/> (the batch's own copy when prefetched: do not dispose).</summary>
    public Tensor BatchIndexOn(Device device) => Copied(1, device) ?? BatchIndex.to(device);

    /// <summary><see cref="Classes"/> on <paramref name="device"/> (the batch's own copy when prefetched: do not dispose).</summary>
    public Tensor ClassesOn(Device device) => Copied(2, device) ?? Classes.to(device);

    /// <summary><see cref="Boxes"/> on <paramref name="device"/> (the batch's own copy when prefetched: do not dispose).</summary>
    public Tensor BoxesOn(Device device) => Copied(3, device) ?? Boxes.to(device);

    Tensor? Copied(int index, Device device) =>
        _onDevice is { } copies && copies[index].device_type == device.type
        && (device.type != DeviceType.CUDA || copies[index].device_index == device.index) ? copies[index] : null;

    /// <inheritdoc/>
    public void Dispose()
    {
        if (_onDevice is not null)
            foreach (Tensor t in _onDevice) t.Dispose();
        Images.Dispose();
        BatchIndex.Dispose();
        Classes.Dispose();
        Boxes.Dispose();
    }
}
