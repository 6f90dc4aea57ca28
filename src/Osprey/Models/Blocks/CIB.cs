using Osprey.Onnx;
using Osprey.Runtime;
using TorchSharp.Modules;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace Osprey.Models.Blocks;

/// <summary>
/// Ultralytics <c>CIB</c> (YOLOv10's compact inverted block): <c>cv1</c> = Sequential(Conv(c1, c1, 3, g=c1),
/// Conv(c1, 2c_, 1), <see cref="RepVGGDW"/>(2c_) when <c>lk</c> else Conv(2c_, 2c_, 3, g=2c_), Conv(2c_, c2, 1),
/// Conv(c2, c2, 3, g=c2)) with c_ = int(c2·e); x + cv1(x) when shortcut and c1 == c2.
/// </summary>
public sealed class CIB : Module<Tensor, Tensor>, IOnnxBlock
{
    private readonly Sequential cv1;
    private readonly bool add;

    /// <param name="inChannels">Input channels.</param>
    /// <param name="outChannels">Output channels.</param>
    /// <param name="shortcut">Residual add (only when channels match).</param>
    /// <param name="expansion">Hidden channels c_ = int(outChannels × expansion).</param>
    /// <param name="largeKernel">RepVGGDW (7×7 + 3×3) as the third layer instead of a 3×3 depthwise Conv.</param>
    public CIB(long inChannels, long outChannels, bool shortcut = true, double expansion = 0.5, bool largeKernel = false)
        : base(nameof(CIB))
    {
        long hidden = 2 * (long)(outChannels * expansion);
        cv1 = Sequential(
            new Conv(inChannels, inChannels, 3, groups: inChannels),
            new Conv(inChannels, hidden, 1),
            largeKernel ? new RepVGGDW(hidden) : new Conv(hidden, hidden, 3, groups: hidden),
            new Conv(hidden, outChannels, 1),
            new Conv(outChannels, outChannels, 3, groups: outChannels));
        add = shortcut && inChannels == outChannels;
        RegisterComponents();
    }

    /// <inheritdoc/>
    public override Tensor forward(Tensor x)
    {
        var y = cv1.call(x);            // (b, c2, h, w)
        return add ? x.Plus(y) : y;
    }

    /// <summary>The five layers of cv1, then <c>Add</c> with the input when the residual applies.</summary>
    public string Emit(OnnxGraph graph, string prefix, IReadOnlyList<string> inputs)
    {
        string y = graph.Emit(cv1, prefix + ".cv1", inputs);
        return add ? graph.Node("Add", $"/{prefix}/Add", [inputs[0], y]) : y;
    }
}
