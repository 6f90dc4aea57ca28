using Osprey.Onnx;
using TorchSharp.Modules;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace Osprey.Models.Blocks;

/// <summary>
/// Ultralytics <c>C2PSA</c> (YOLO11 layer 10): cv1 (1×1) to 2c channels (c = int(c1·e)), split in two, n
/// <see cref="PSABlock"/>s (max(c / 64, 1) heads, attn_ratio 0.5) on the second half, concatenate and project back with
/// cv2 (1×1): cv2(cat(a, m(b))). Input and output channels are equal.
/// </summary>
public sealed class C2PSA : Module<Tensor, Tensor>, IOnnxBlock
{
    private readonly Conv cv1;
    private readonly Conv cv2;
    private readonly Sequential m;

    /// <param name="channels">Input and output channels (c1 == c2).</param>
    /// <param name="repeats">Number of PSABlocks.</param>
    /// <param name="expansion">Hidden channels c = int(channels × expansion).</param>
    public C2PSA(long channels, int repeats = 1, double expansion = 0.5) : base(nameof(C2PSA))
    {
        Hidden = (long)(channels * expansion);
        cv1 = new Conv(channels, 2 * Hidden, 1, 1);
        cv2 = new Conv(2 * Hidden, channels, 1);
        long heads = Math.Max(Hidden / 64, 1);
        m = Sequential(Enumerable.Range(0, repeats)
            .Select(_ => (Module<Tensor, Tensor>)new PSABlock(Hidden, 0.5, heads)).ToArray());
        RegisterComponents();
    }

    /// <summary>Hidden channels c of each half.</summary>
    public long Hidden { get; }

    /// <inheritdoc/>
    public override Tensor forward(Tensor x)
    {
        var halves = cv1.call(x).split(new[] { Hidden, Hidden }, 1);   // 2 × (b, c, h, w)
        var attended = m.call(halves[1]);                              // (b, c, h, w)
        return cv2.call(cat(new[] { halves[0], attended }, 1));       // (b, 2c, h, w) → (b, c1, h, w)
    }

    /// <summary>cv1, Split, the PSABlocks on the second part, Concat, cv2.</summary>
    public string Emit(OnnxGraph graph, string prefix, IReadOnlyList<string> inputs)
    {
        var halves = graph.Split($"/{prefix}/Split", cv1.Emit(graph, prefix + ".cv1", inputs), Hidden, Hidden);
        string attended = graph.Emit(m, prefix + ".m", [halves[1]]);
        string both = graph.Node("Concat", $"/{prefix}/Concat", [halves[0], attended], OnnxGraph.Attr("axis", 1));
        return cv2.Emit(graph, prefix + ".cv2", [both]);
    }
}
