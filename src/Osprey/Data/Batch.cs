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
    Tensor[]? _onDevice; // Images (or the tile tensors), BatchIndex, Classes, Boxes on a device (CopyTo)
    Tensor? _images;

    /// <summary>Images, uint8 (B, 3, H, W), RGB. On the device path (<see cref="Tiles"/>) drawn on the CPU at first use
    /// (plots, tests); the trainer's <see cref="ImagesAsFloat"/> draws them on its device instead.</summary>
    public Tensor Images => _images ??= Tiles!.Render(Tiles.Tiles, Tiles.TileIndex, Tiles.Parameters, Tiles.Tables)
        .DetachFromDisposeScope(); // owned by the batch (disposed with it), not by a scope around the first use

    /// <summary>The tiles and plans of the device path (<see cref="LoaderOptions.DeviceAugment"/>), or null.</summary>
    public TileBatch? Tiles { get; }

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

    /// <summary>Training: images of this global batch over all ranks (<see cref="DistributedSampler.GlobalBatchSize"/>);
    /// 0 when not known.</summary>
    public int GlobalSize { get; init; }

    internal Batch(Tensor images, Tensor batchIndex, Tensor classes, Tensor boxes, IReadOnlyList<ImageInfo> infos, int epoch, int index)
    {
        (_images, BatchIndex, Classes, Boxes, Infos, Epoch, Index) = (images, batchIndex, classes, boxes, infos, epoch, index);
    }

    internal Batch(TileBatch tiles, Tensor batchIndex, Tensor classes, Tensor boxes, IReadOnlyList<ImageInfo> infos, int epoch, int index)
    {
        (Tiles, BatchIndex, Classes, Boxes, Infos, Epoch, Index) = (tiles, batchIndex, classes, boxes, infos, epoch, index);
    }

    Tensor[] HostTensors => Tiles is { } t
        ? [BatchIndex, Classes, Boxes, t.Tiles, t.TileIndex, t.Parameters, t.Tables]
        : [BatchIndex, Classes, Boxes, Images];

    /// <summary>True when the tensors live in page-locked (pinned) host memory, so device copies can be asynchronous.</summary>
    public bool IsPinned => (Tiles?.Tiles ?? Images).is_pinned();

    /// <summary>
    /// Starts copying the batch to <paramref name="device"/> (non-blocking: asynchronous from pinned memory) and keeps the
    /// copies, owned by the batch, for <see cref="ImagesAsFloat"/> and the <c>…On</c> accessors. See <see cref="DevicePrefetch"/>.
    /// </summary>
    public void CopyTo(Device device)
    {
        if (_onDevice is not null) return;
        _onDevice = HostTensors.Select(t => t.to(device, copy: true, non_blocking: true).DetachFromDisposeScope()).ToArray();
    }

    /// <summary>The device of the copies made by <see cref="CopyTo"/>, or null.</summary>
    public Device? CopiedTo => _onDevice?[0].device;

    /// <summary>The images as float32 in [0, 1] on <paramref name="device"/> (copied as uint8, converted there; on the device
    /// path drawn there from the tiles by <see cref="DeviceAugment"/>).</summary>
    public Tensor ImagesAsFloat(Device device)
    {
        using var scope = NewDisposeScope();
        Tensor levels;
        if (Tiles is { } t)
        {
            levels = Copied(3, device) is { } tiles
                ? t.RenderLevels(tiles, Copied(4, device)!, Copied(5, device)!, Copied(6, device)!)
                : t.RenderLevels(t.Tiles.to(device), t.TileIndex.to(device), t.Parameters.to(device), t.Tables.to(device));
        }
        else
        {
            levels = (Copied(3, device) ?? Images.to(device)).to(ScalarType.Float32);
        }
        return levels.div_(Scalars.Of(255)).MoveToOuterDisposeScope();
    }

    /// <summary><see cref="BatchIndex"/> on <paramref name="device"/> (the batch's own copy when prefetched: do not dispose).</summary>
    public Tensor BatchIndexOn(Device device) => Copied(0, device) ?? BatchIndex.to(device);

    /// <summary><see cref="Classes"/> on <paramref name="device"/> (the batch's own copy when prefetched: do not dispose).</summary>
    public Tensor ClassesOn(Device device) => Copied(1, device) ?? Classes.to(device);

    /// <summary><see cref="Boxes"/> on <paramref name="device"/> (the batch's own copy when prefetched: do not dispose).</summary>
    public Tensor BoxesOn(Device device) => Copied(2, device) ?? Boxes.to(device);

    Tensor? Copied(int index, Device device) =>
        _onDevice is { } copies && copies[index].device_type == device.type
        && (device.type != DeviceType.CUDA || copies[index].device_index == device.index) ? copies[index] : null;

    /// <inheritdoc/>
    public void Dispose()
    {
        if (_onDevice is not null)
            foreach (Tensor t in _onDevice) t.Dispose();
        _images?.Dispose();
        Tiles?.Dispose();
        BatchIndex.Dispose();
        Classes.Dispose();
        Boxes.Dispose();
    }
}

/// <summary>
/// The device path's share of a batch (<see cref="LoaderOptions.DeviceAugment"/>): the loaded images as tiles and each
/// sample's <see cref="TilePlan"/>; <see cref="DeviceAugment.Render"/> draws the images from them.
/// </summary>
/// <param name="Tiles">uint8 (T, S, S, 3) BGR tile slots.</param>
/// <param name="TileIndex">int64 (B·4): the tile of each sample's slot.</param>
/// <param name="Parameters">float32 (B, <see cref="TilePlan.Floats"/>).</param>
/// <param name="Tables">uint8 (B, 768): HSV tables.</param>
/// <param name="Side">Output side S.</param>
/// <param name="SlotsInUse">Per slot: used by some sample of the batch (slot 0 always; the others only with mosaic).</param>
public sealed record TileBatch(Tensor Tiles, Tensor TileIndex, Tensor Parameters, Tensor Tables, int Side, IReadOnlyList<bool> SlotsInUse) : IDisposable
{
    /// <summary>Draws the images (uint8 (B, 3, S, S) RGB) from these tensors, or their copies on a device.</summary>
    public Tensor Render(Tensor tiles, Tensor tileIndex, Tensor parameters, Tensor tables) =>
        DeviceAugment.Render(tiles, tileIndex, parameters, tables, Side, SlotsInUse);

    /// <summary>As <see cref="Render"/>, as float32 whole levels (<see cref="DeviceAugment.RenderLevels"/>).</summary>
    public Tensor RenderLevels(Tensor tiles, Tensor tileIndex, Tensor parameters, Tensor tables) =>
        DeviceAugment.RenderLevels(tiles, tileIndex, parameters, tables, Side, SlotsInUse);

    /// <inheritdoc/>
    public void Dispose()
    {
        Tiles.Dispose();
        TileIndex.Dispose();
        Parameters.Dispose();
        Tables.Dispose();
    }
}
