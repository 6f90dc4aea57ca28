using TorchSharp;
using static TorchSharp.torch;

namespace Osprey.Data;

/// <summary>
/// One collated batch (CPU tensors, owned: dispose it). <see cref="Images"/> uint8 (B, 3, H, W) RGB; the targets are
/// flattened over the batch: <see cref="BatchIndex"/> (N) int64, <see cref="Classes"/> (N) float32,
/// <see cref="Boxes"/> (N, 4) float32 normalised centre-xywh.
/// </summary>
public sealed class Batch : IDisposable
{
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

    /// <summary>The images as float32 in [0, 1] on <paramref name="device"/> (copied as uint8, converted there).</summary>
    public Tensor ImagesAsFloat(Device device)
    {
        using var moved = Images.to(device);
        return moved.to(ScalarType.Float32).div_(255f);
    }

    /// <inheritdoc/>
    public void Dispose()
    {
        Images.Dispose();
        BatchIndex.Dispose();
        Classes.Dispose();
        Boxes.Dispose();
    }
}
