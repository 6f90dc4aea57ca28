using Osprey.Onnx;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace Osprey.Models.Blocks;

/// <summary>Nearest-neighbour upsampling by an integer factor (Ultralytics' <c>nn.Upsample(None, 2, "nearest")</c>).</summary>
public sealed class Upsample : Module<Tensor, Tensor>, IOnnxBlock
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

    /// <summary>A <c>Resize</c> node (nearest, asymmetric, floor) with scales (1, 1, s, s).</summary>
    public string Emit(OnnxGraph graph, string prefix, IReadOnlyList<string> inputs)
    {
        using var scope = NewDisposeScope();
        float s = (float)scale;
        string scales = graph.Initializer($"/{prefix}/scales", tensor(new[] { 1f, 1f, s, s }), forceFloat: true);
        // roi is optional from opset 13; opsets 11 and 12 need the input (empty: unused by "asymmetric")
        string roi = graph.Options.Opset >= 13 ? "" : graph.Initializer($"/{prefix}/roi", zeros(0), forceFloat: true);
        return graph.Node("Resize", $"/{prefix}/Resize", [inputs[0], roi, scales],
            OnnxGraph.Attr("coordinate_transformation_mode", "asymmetric"), OnnxGraph.Attr("cubic_coeff_a", -0.75f),
            OnnxGraph.Attr("mode", "nearest"), OnnxGraph.Attr("nearest_mode", "floor"));
    }
}
