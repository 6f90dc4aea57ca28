using Osprey.Onnx;
using TorchSharp.Modules;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace Osprey.Models.Blocks;

/// <summary>
/// Distribution Focal Loss integral: softmax over the reg_max bins of each box side, expectation via a fixed
/// 1×1 convolution whose weight is arange(reg_max) (not trained).
/// </summary>
public sealed class DFL : Module<Tensor, Tensor>, IOnnxBlock
{
    private readonly Conv2d conv;
    private readonly long bins;

    /// <param name="bins">Bins per side (reg_max, 16).</param>
    public DFL(long bins = 16) : base(nameof(DFL))
    {
        this.bins = bins;
        conv = Conv2d(bins, 1, 1, bias: false);
        using (no_grad())
        {
            conv.weight!.copy_(arange(bins, dtype: float32).view(1, bins, 1, 1));
        }
        conv.weight!.requires_grad = false;
        RegisterComponents();
    }

    /// <summary>
    /// In eval mode, the softmax over the last dimension used instead of libtorch's (an imported ONNX model uses ONNX
    /// Runtime's, <see cref="Onnx.MlasSoftmax"/>); null = libtorch's softmax.
    /// </summary>
    internal Func<Tensor, Tensor>? SoftmaxFunction { get; set; }

    /// <inheritdoc/>
    public override Tensor forward(Tensor x)
    {
        long batch = x.shape[0], anchors = x.shape[2];                             // x (b, 4·bins, A)
        var grouped = x.view(batch, 4, bins, anchors);                             // (b, 4, bins, A)
        var probabilities = !training && SoftmaxFunction is { } softmax
            ? softmax(grouped.transpose(3, 2)).permute(0, 3, 1, 2)                   // (b, 4, A, bins) → (b, bins, 4, A)
            : grouped.transpose(2, 1).softmax(1);                                    // (b, bins, 4, A)
        return conv.call(probabilities).view(batch, 4, anchors);                    // (b, 1, 4, A) → (b, 4, A)
    }

    /// <summary>Reshape to (b, 4, bins, A), Transpose to (b, bins, 4, A), Softmax over the bins, the arange Conv,
    /// Reshape to (b, 4, A).</summary>
    public string Emit(OnnxGraph graph, string prefix, IReadOnlyList<string> inputs)
    {
        string scope = OnnxGraph.Scope(prefix);
        string d = graph.Node("Reshape", scope + "/Reshape", [inputs[0], graph.Int64s(0, 4, bins, -1)]);   // (b, 4, bins, A)
        d = graph.Node("Transpose", scope + "/Transpose", [d], OnnxGraph.Attr("perm", 0, 2, 1, 3));        // (b, bins, 4, A)
        d = graph.SoftmaxAxis1(scope + "/Softmax", d);
        d = graph.Conv(scope + "/conv/Conv", d, prefix + ".conv", conv);                                     // (b, 1, 4, A)
        return graph.Node("Reshape", scope + "/Reshape_1", [d, graph.Int64s(0, 4, -1)]);                      // (b, 4, A)
    }
}
