using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace Osprey.Models.Blocks;

/// <summary>Nearest-neighbour upsampling by an integer factor (Ultralytics' <c>nn.Upsample(None, 2, "nearest")</c>).</summary>
public sealed class Upsample : Module<Tensor, Tensor>
{
    private readonly double scale;

    /// <param name="scale">Scale factor for h and w.</param>
    public Upsample(double scale = 2) : base(nameof(Upsample))
    {
        this.scale = scale;
        RegisterComponents();
    }

    /// <inheritdoc/>
    public override Tensor forward(Tensor x) => // (b, c, h, w) → (b, c, h·s, w·s)
        functional.interpolate(x, scale_factor: new[] { scale, scale }, mode: InterpolationMode.Nearest);
}
