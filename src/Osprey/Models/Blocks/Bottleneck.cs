using Osprey.Onnx;
using Osprey.Runtime;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace Osprey.Models.Blocks;

/// <summary>Ultralytics <c>Bottleneck</c>: Conv k3 → Conv k3, with a residual add when shortcut and c_in == c_out.</summary>
public sealed class Bottleneck : Module<Tensor, Tensor>, IOnnxBlock
{
    private readonly Conv cv1;
    private readonly Conv cv2;
    private readonly bool add;

    /// <param name="inChannels">Input channels.</param>
    /// <param name="outChannels">Output channels.</param>
    /// <param name="shortcut">Residual connection (only when channels match).</param>
    /// <param name="groups">Groups of the second convolution.</param>
    /// <param name="kernel1">Kernel of cv1.</param>
    /// <param name="kernel2">Kernel of cv2.</param>
    /// <param name="expansion">Hidden channels = int(outChannels × expansion).</param>
    public Bottleneck(long inChannels, long outChannels, bool shortcut = true, long groups = 1, long kernel1 = 3,
        long kernel2 = 3, double expansion = 0.5) : base(nameof(Bottleneck))
    {
        long hidden = (long)(outChannels * expansion);
        cv1 = new Conv(inChannels, hidden, kernel1, 1);
        cv2 = new Conv(hidden, outChannels, kernel2, 1, groups: groups);
        add = shortcut && inChannels == outChannels;
        RegisterComponents();
    }

    /// <inheritdoc/>
    public override Tensor forward(Tensor x)
    {
        var y = cv2.call(cv1.call(x)); // (b, c_out, h, w)
        return add ? x.Plus(y) : y;      // explicit alpha: see Scalars
    }

    /// <summary>cv1, cv2, then <c>Add</c> with the input when the residual applies.</summary>
    public string Emit(OnnxGraph graph, string prefix, IReadOnlyList<string> inputs)
    {
        string x = inputs[0];
        string y = cv2.Emit(graph, prefix + ".cv2", [cv1.Emit(graph, prefix + ".cv1", [x])]);
        return add ? graph.Node("Add", $"/{prefix}/Add", [x, y]) : y;
    }
}
