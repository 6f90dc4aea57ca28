using Osprey.Onnx;
using Osprey.Runtime;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace Osprey.Models.Blocks;

/// <summary>
/// Ultralytics <c>Attention</c> (YOLO11's PSABlock, YOLOv10's PSA): multi-head self-attention over the h·w positions
/// with convolutional projections. head_dim = dim / heads, key_dim = int(head_dim · attn_ratio), scale = key_dim^-0.5;
/// <c>qkv</c> = Conv(dim, dim + 2·key_dim·heads, 1, act=False), <c>proj</c> = Conv(dim, dim, 1, act=False),
/// <c>pe</c> = Conv(dim, dim, 3, g=dim, act=False) (positional encoding on v). Forward:
/// q, k, v = split(qkv(x).view(b, heads, 2·key_dim + head_dim, n)); attn = softmax(qᵀk · scale);
/// proj((v·attnᵀ).view(b, c, h, w) + pe(v.reshape(b, c, h, w))).
/// <para>Under a mixed <see cref="CastPolicy"/> the convolutions compute as every Conv does, the two matmuls in the
/// compute type and the softmax where autocast runs it (<see cref="CastPolicy.Softmax"/>); the output is the compute
/// type, what the next convolution casts to anyway.</para>
/// </summary>
public sealed class Attention : Module<Tensor, Tensor>, ICastPolicyAware, IOnnxBlock
{
    private readonly Conv qkv;
    private readonly Conv proj;
    private readonly Conv pe;

    /// <param name="dim">Channels in and out.</param>
    /// <param name="heads">Attention heads (dim must divide evenly).</param>
    /// <param name="attentionRatio">key_dim / head_dim.</param>
    public Attention(long dim, long heads = 8, double attentionRatio = 0.5) : base(nameof(Attention))
    {
        if (heads < 1 || dim % heads != 0)
            throw new ArgumentException($"Attention: {dim} channels do not split into {heads} heads.", nameof(heads));
        Dim = dim;
        Heads = heads;
        HeadDim = dim / heads;
        KeyDim = (long)(HeadDim * attentionRatio);
        Scale = Math.Pow(KeyDim, -0.5);
        qkv = new Conv(dim, dim + 2 * KeyDim * heads, 1, activation: false);
        proj = new Conv(dim, dim, 1, activation: false);
        pe = new Conv(dim, dim, 3, 1, groups: dim, activation: false);
        RegisterComponents();
    }

    /// <summary>Channels in and out.</summary>
    public long Dim { get; }

    /// <summary>Number of heads.</summary>
    public long Heads { get; }

    /// <summary>Value channels per head (dim / heads).</summary>
    public long HeadDim { get; }

    /// <summary>Query and key channels per head (int(head_dim · attn_ratio)).</summary>
    public long KeyDim { get; }

    /// <summary>key_dim^-0.5.</summary>
    public double Scale { get; }

    /// <summary>How the matmuls and the softmax compute (the convolutions carry their own policy).</summary>
    public CastPolicy Policy { get; set; } = CastPolicy.Float32;

    /// <inheritdoc/>
    public override Tensor forward(Tensor x)
    {
        long batch = x.shape[0], channels = x.shape[1], height = x.shape[2], width = x.shape[3];
        var parts = qkv.call(x).view(batch, Heads, 2 * KeyDim + HeadDim, height * width)   // (b, heads, 2kd + hd, n)
            .split(new[] { KeyDim, KeyDim, HeadDim }, 2);
        Tensor q = parts[0], k = parts[1], v = parts[2];                                     // (b, heads, kd|kd|hd, n)
        var scores = Policy.MatMul(q.transpose(-2, -1), k).mul(Scalars.Of(Scale));           // (b, heads, n, n)
        var attention = Policy.Softmax(scores, -1);                                          // rows sum to 1 over keys
        var attended = Policy.MatMul(v, attention.transpose(-2, -1))                         // (b, heads, hd, n)
            .view(batch, channels, height, width);                                           // (b, c, h, w)
        var positions = pe.call(v.reshape(batch, channels, height, width));                  // (b, c, h, w)
        return proj.call(attended.Plus(positions));
    }

    /// <summary>qkv, Reshape, Split, Transpose, MatMul, Mul by the scale, Softmax over the keys, Transpose, MatMul,
    /// Reshape to the input's shape, pe on v, Add, proj.</summary>
    public string Emit(OnnxGraph graph, string prefix, IReadOnlyList<string> inputs)
    {
        string scope = OnnxGraph.Scope(prefix), x = inputs[0];
        string all = qkv.Emit(graph, prefix + ".qkv", [x]);
        all = graph.Node("Reshape", scope + "/Reshape", [all, graph.Int64s(0, Heads, 2 * KeyDim + HeadDim, -1)]);
        var qkvParts = graph.SplitAlong($"{scope}/Split", all, 2, KeyDim, KeyDim, HeadDim);          // q, k, v
        string queries = graph.Node("Transpose", scope + "/Transpose", [qkvParts[0]], OnnxGraph.Attr("perm", 0, 1, 3, 2));
        string scores = graph.Node("MatMul", scope + "/MatMul", [queries, qkvParts[1]]);             // (b, heads, n, n)
        string scale;
        using (NewDisposeScope()) scale = graph.Initializer(scope + "/Constant_scale", tensor(new[] { (float)Scale }));
        scores = graph.Node("Mul", scope + "/Mul", [scores, scale]);
        string attention = graph.Node("Softmax", scope + "/Softmax", [scores], OnnxGraph.Attr("axis", 3)); // last axis, any opset
        string transposed = graph.Node("Transpose", scope + "/Transpose_1", [attention], OnnxGraph.Attr("perm", 0, 1, 3, 2));
        string attended = graph.Node("MatMul", scope + "/MatMul_1", [qkvParts[2], transposed]);     // (b, heads, hd, n)
        string shape = graph.Node("Shape", scope + "/Shape", [x]);                                   // (b, c, h, w)
        attended = graph.Node("Reshape", scope + "/Reshape_1", [attended, shape]);
        string values = graph.Node("Reshape", scope + "/Reshape_2", [qkvParts[2], shape]);
        string sum = graph.Node("Add", scope + "/Add", [attended, pe.Emit(graph, prefix + ".pe", [values])]);
        return proj.Emit(graph, prefix + ".proj", [sum]);
    }
}
