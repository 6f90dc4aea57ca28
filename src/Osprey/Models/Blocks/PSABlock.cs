using Osprey.Onnx;
using Osprey.Runtime;
using TorchSharp.Modules;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace Osprey.Models.Blocks;

/// <summary>
/// Ultralytics <c>PSABlock</c> (YOLO11's C2PSA): position-sensitive attention then a feed-forward of two 1×1 Convs,
/// each with a residual add when <c>shortcut</c>: x = x + attn(x); x = x + ffn(x), ffn = Conv(c, 2c, 1),
/// Conv(2c, c, 1, act=False). Keys <c>attn.qkv…</c>, <c>ffn.0…</c>, <c>ffn.1…</c>.
/// </summary>
public sealed class PSABlock : Module<Tensor, Tensor>, IOnnxBlock
{
    private readonly Attention attn;
    private readonly Sequential ffn;
    private readonly bool add;

    /// <param name="channels">Channels in and out.</param>
    /// <param name="attentionRatio">key_dim / head_dim of the attention.</param>
    /// <param name="heads">Attention heads.</param>
    /// <param name="shortcut">Residual adds.</param>
    public PSABlock(long channels, double attentionRatio = 0.5, long heads = 4, bool shortcut = true) : base(nameof(PSABlock))
    {
        attn = new Attention(channels, heads, attentionRatio);
        ffn = FeedForward(channels);
        add = shortcut;
        RegisterComponents();
    }

    /// <summary>Ultralytics' attention feed-forward: Conv(c, 2c, 1), Conv(2c, c, 1, act=False).</summary>
    public static Sequential FeedForward(long channels) =>
        Sequential(new Conv(channels, 2 * channels, 1), new Conv(2 * channels, channels, 1, activation: false));

    /// <inheritdoc/>
    public override Tensor forward(Tensor x)
    {
        var attended = attn.call(x);                              // (b, c, h, w)
        x = add ? x.Plus(attended) : attended;
        var fed = ffn.call(x);                                    // (b, c, h, w)
        return add ? x.Plus(fed) : fed;
    }

    /// <summary>The attention, Add, the feed-forward, Add.</summary>
    public string Emit(OnnxGraph graph, string prefix, IReadOnlyList<string> inputs) =>
        EmitResidual(graph, prefix, inputs[0], attn, ffn, add);

    /// <summary>x (+) attn(x), then (+) ffn: the nodes PSABlock and PSA share (Add, Add_1 in the block's scope).</summary>
    internal static string EmitResidual(OnnxGraph graph, string prefix, string x, Attention attention, Sequential feedForward,
        bool residual)
    {
        string scope = OnnxGraph.Scope(prefix);
        string attended = attention.Emit(graph, prefix + ".attn", [x]);
        if (residual) attended = graph.Node("Add", scope + "/Add", [x, attended]);
        string fed = graph.Emit(feedForward, prefix + ".ffn", [attended]);
        return residual ? graph.Node("Add", scope + "/Add_1", [attended, fed]) : fed;
    }
}
