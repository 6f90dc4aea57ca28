using static TorchSharp.torch;

namespace Osprey.Models.Heads;

/// <summary>A head's anchors for the last seen map shapes, device, dtype and strides (kept out of the module's buffers).</summary>
internal sealed class AnchorCache
{
    private string key = "";
    private Tensor? points;    // (1, 2, A)
    private Tensor? strideRow; // (1, A)

    /// <summary>Anchor centres (1, 2, A) in grid units and the stride of each (1, A) for <paramref name="maps"/>.</summary>
    public (Tensor Points, Tensor Strides) Get(IReadOnlyList<Tensor> maps, IReadOnlyList<float> strides)
    {
        string wanted = string.Join(";", maps.Select(m => $"{m.shape[2]}x{m.shape[3]}")) +
                        $"|{maps[0].device}|{maps[0].dtype}|{string.Join(",", strides)}";
        if (wanted != key || points is null || strideRow is null)
        {
            Clear();
            using var scope = NewDisposeScope();
            var (anchorPoints, strideTensor) = Anchors.Make(maps, strides);      // (A, 2), (A, 1)
            points = anchorPoints.transpose(0, 1).unsqueeze(0).contiguous().DetachFromDisposeScope();
            strideRow = strideTensor.transpose(0, 1).contiguous().DetachFromDisposeScope();
            key = wanted;
        }
        return (points, strideRow);
    }

    /// <summary>Disposes the cached tensors.</summary>
    public void Clear()
    {
        points?.Dispose();
        strideRow?.Dispose();
        points = null;
        strideRow = null;
        key = "";
    }
}
