using Osprey.Onnx;
using Osprey.Runtime;
using TorchSharp.Modules;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace Osprey.Models.Blocks;

/// <summary>
/// Ultralytics <c>RepVGGDW</c> (YOLOv10's large-kernel CIB): SiLU(conv(x) + conv1(x)) with <c>conv</c> = a depthwise
/// Conv(ed, ed, 7, 1, 3, g=ed, act=False) and <c>conv1</c> = a depthwise Conv(ed, ed, 3, 1, 1, g=ed, act=False).
/// <see cref="Fuse"/> re-parameterises it as Ultralytics' <c>fuse</c> does: both batch norms folded (<see cref="Conv.Fuse"/>),
/// the 3×3 kernel zero-padded by 2 on each side and added to the 7×7, the biases added, <c>conv1</c> removed; the forward
/// is then SiLU(conv(x)), equal to the unfused one within float rounding.
/// </summary>
public sealed class RepVGGDW : Module<Tensor, Tensor>, IOnnxBlock
{
    private readonly Conv conv;
    private Conv? conv1;
    private readonly SiLU act;

    /// <param name="channels">Input and output channels (ed).</param>
    public RepVGGDW(long channels) : base(nameof(RepVGGDW))
    {
        Channels = channels;
        conv = new Conv(channels, channels, 7, 1, 3, groups: channels, activation: false);
        conv1 = new Conv(channels, channels, 3, 1, 1, groups: channels, activation: false);
        act = SiLU();
        RegisterComponents();
    }

    /// <summary>Channels in and out.</summary>
    public long Channels { get; }

    /// <summary>True once <see cref="Fuse"/> merged the 3×3 branch into the 7×7.</summary>
    public bool IsFused => conv1 is null;

    /// <inheritdoc/>
    public override Tensor forward(Tensor x)
    {
        var y = conv.call(x);                                   // (b, ed, h, w)
        return act.call(conv1 is null ? y : y.Plus(conv1.call(x)));
    }

    /// <summary>
    /// Folds both batch norms, adds the 3×3 kernel (padded to 7×7: its centre lands on the 7×7's centre, as padding 1
    /// vs 3 keeps the outputs aligned) and its bias into <c>conv</c>, and removes <c>conv1</c>.
    /// </summary>
    public void Fuse()
    {
        if (conv1 is null) return;
        conv.Fuse();
        conv1.Fuse();
        using (var scope = NewDisposeScope())
        using (no_grad())
        {
            Conv2d large = conv.Convolution, small = conv1.Convolution;
            var padded = nn.functional.pad(small.weight!, new long[] { 2, 2, 2, 2 });   // (ed, 1, 3, 3) → (ed, 1, 7, 7)
            large.weight!.add_(padded);
            large.bias!.add_(small.bias!);
        }
        _internal_submodules.Remove(nameof(conv1));
        conv1.Dispose();
        conv1 = null;
    }

    /// <summary>The fused 7×7 depthwise Conv, then Sigmoid·Mul for the SiLU (export fuses the model first).</summary>
    public string Emit(OnnxGraph graph, string prefix, IReadOnlyList<string> inputs)
    {
        if (conv1 is not null) throw new InvalidOperationException($"ONNX export: {prefix} is not fused (export fuses the model first).");
        string scope = OnnxGraph.Scope(prefix);
        string y = conv.Emit(graph, prefix + ".conv", inputs);
        string sigmoid = graph.Node("Sigmoid", scope + "/act/Sigmoid", [y]);
        return graph.Node("Mul", scope + "/act/Mul", [y, sigmoid]);
    }
}
