using static TorchSharp.torch;

namespace Osprey.Losses;

/// <summary>Loss of one batch; dispose to free the tensors.</summary>
/// <param name="Total">Scalar to back-propagate: (box + cls + dfl) · batch scale, with gradient.</param>
/// <param name="Items">shape(3) detached [box, cls, dfl], gains applied, not multiplied by the batch scale.</param>
public sealed record DetectionLossResult(Tensor Total, Tensor Items) : IDisposable
{
    /// <summary>The detached items as numbers.</summary>
    public (float Box, float Cls, float Dfl) ItemValues()
    {
        var values = Items.to(CPU).data<float>().ToArray();
        return (values[0], values[1], values[2]);
    }

    /// <inheritdoc />
    public void Dispose()
    {
        Total.Dispose();
        Items.Dispose();
    }
}
