using Osprey.Onnx;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace Osprey.Models.Blocks;

/// <summary>Ultralytics <c>Concat</c>: concatenates its inputs along a dimension (1 = channels).</summary>
public sealed class Concat : Module<Tensor[], Tensor>, IOnnxBlock
{
    private readonly long dimension;

    /// <param name="dimension">Concatenation dimension.</param>
    public Concat(long dimension = 1) : base(nameof(Concat))
    {
        this.dimension = dimension;
        RegisterComponents();
    }

    /// <inheritdoc/>
    public override Tensor forward(Tensor[] inputs) => cat(inputs, dimension); // Σ (b, c_i, h, w) → (b, Σc_i, h, w)

    /// <summary>One <c>Concat</c> node along the dimension.</summary>
    public string Emit(OnnxGraph graph, string prefix, IReadOnlyList<string> inputs) =>
        graph.Node("Concat", $"/{prefix}/Concat", inputs, OnnxGraph.Attr("axis", dimension));
}
