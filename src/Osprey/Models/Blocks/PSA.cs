using Osprey.Onnx;
using Osprey.Runtime;
using TorchSharp.Modules;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace Osprey.Models.Blocks;

/// <summary>
/// Ultralytics <c>PSA</c> (YOLOv10 layer 10): cv1 (1×1) to 2c channels (c = int(c1·e)), split in two; on the second
/// half b = b + attn(b), b = b + ffn(b) (<see cref="Attention"/> with max(c / 64, 1) heads, attn_ratio 0.5; the
/// feed-forward of <see cref="PSABlock"/>); cv2(cat(a, b)). Keys <c>cv1</c>, <c>cv2</c>, <c>attn</c>, <c>ffn</c>.
/// </summary>
public sealed class PSA : Module<Tensor, Tensor>, IOnnxBlock
{
    private readonly Conv cv1;
    private readonly Conv cv2;
    private readonly Attention attn;
    private readonly Sequential ffn;

    /// <param name="channels">Input and output channels (c1 == c2).</param>
    /// <param name="expansion">Hidden channels c = int(channels × expansion).</param>
    public PSA(long channels, double expansion = 0.5) : base(nameof(PSA))
    {
        Hidden = (long)(channels * expansion);
        cv1 = new Conv(channels, 2 * Hidden, 1, 1);
        cv2 = new Conv(2 * Hidden, channels, 1);
        attn = new Attention(Hidden, Math.Max(Hidden / 64, 1), 0.5);
        ffn = PSABlock.FeedForward(Hidden);
        RegisterComponents();
    }

    /// <summary>Hidden channels c of each half.</summary>
    public long Hidden { get; }

    /// <inheritdoc/>
    public override Tensor forward(Tensor x)
    {
        var halves = cv1.call(x).split(new[] { Hidden, Hidden }, 1);   // 2 × (b, c, h, w)
        var b = halves[1].Plus(attn.call(halves[1]));                  // (b, c, h, w)
        b = b.Plus(ffn.call(b));
        return cv2.call(cat(new[] { halves[0], b }, 1));              // (b, 2c, h, w) → (b, c1, h, w)
    }

    /// <summary>cv1, Split, the attention and feed-forward with their adds, Concat, cv2.</summary>
    public string Emit(OnnxGraph graph, string prefix, IReadOnlyList<string> inputs)
    {
        var halves = graph.Split($"/{prefix}/Split", cv1.Emit(graph, prefix + ".cv1", inputs), Hidden, Hidden);
        string b = PSABlock.EmitResidual(graph, prefix, halves[1], attn, ffn, residual: true);
        string both = graph.Node("Concat", $"/{prefix}/Concat", [halves[0], b], OnnxGraph.Attr("axis", 1));
        return cv2.Emit(graph, prefix + ".cv2", [both]);
    }
}
