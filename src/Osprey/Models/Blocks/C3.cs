using Osprey.Onnx;
using TorchSharp.Modules;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace Osprey.Models.Blocks;

/// <summary>
/// Ultralytics <c>C3</c>: two 1×1 branches of c_ = int(c_out·e) channels, n bottlenecks (1×1 then 3×3, e = 1) on the
/// first, concatenated and projected by cv3 (1×1): cv3(cat(m(cv1(x)), cv2(x))). Not sealed: <see cref="C3k"/> is a C3
/// whose bottlenecks use k×k kernels.
/// </summary>
public class C3 : Module<Tensor, Tensor>, IOnnxBlock
{
    private readonly Conv cv1;
    private readonly Conv cv2;
    private readonly Conv cv3;
    private readonly Sequential m;

    /// <param name="inChannels">Input channels.</param>
    /// <param name="outChannels">Output channels.</param>
    /// <param name="repeats">Number of bottlenecks.</param>
    /// <param name="shortcut">Residual bottlenecks.</param>
    /// <param name="groups">Groups of the bottlenecks' second convolution.</param>
    /// <param name="expansion">Hidden channels c_ = int(outChannels × expansion).</param>
    public C3(long inChannels, long outChannels, int repeats = 1, bool shortcut = true, long groups = 1, double expansion = 0.5)
        : this(nameof(C3), inChannels, outChannels, repeats, shortcut, groups, expansion, 1, 3)
    {
    }

    /// <summary>For subclasses: the bottlenecks' kernels are (<paramref name="kernel1"/>, <paramref name="kernel2"/>).</summary>
    /// <param name="name">Module name.</param>
    /// <param name="inChannels">Input channels.</param>
    /// <param name="outChannels">Output channels.</param>
    /// <param name="repeats">Number of bottlenecks.</param>
    /// <param name="shortcut">Residual bottlenecks.</param>
    /// <param name="groups">Groups of the bottlenecks' second convolution.</param>
    /// <param name="expansion">Hidden channels c_ = int(outChannels × expansion).</param>
    /// <param name="kernel1">Kernel of each bottleneck's cv1.</param>
    /// <param name="kernel2">Kernel of each bottleneck's cv2.</param>
    protected C3(string name, long inChannels, long outChannels, int repeats, bool shortcut, long groups, double expansion,
        long kernel1, long kernel2) : base(name)
    {
        long hidden = (long)(outChannels * expansion);
        cv1 = new Conv(inChannels, hidden, 1, 1);
        cv2 = new Conv(inChannels, hidden, 1, 1);
        cv3 = new Conv(2 * hidden, outChannels, 1);
        m = Sequential(Enumerable.Range(0, repeats)
            .Select(_ => (Module<Tensor, Tensor>)new Bottleneck(hidden, hidden, shortcut, groups, kernel1, kernel2, 1.0)).ToArray());
        // Explicit, in field order: RegisterComponents misses a subclass's inherited private fields.
        register_module(nameof(cv1), cv1);
        register_module(nameof(cv2), cv2);
        register_module(nameof(cv3), cv3);
        register_module(nameof(m), m);
    }

    /// <inheritdoc/>
    public override Tensor forward(Tensor x)
    {
        var main = m.call(cv1.call(x));                  // (b, c_, h, w)
        var side = cv2.call(x);                          // (b, c_, h, w)
        return cv3.call(cat(new[] { main, side }, 1));   // (b, 2c_, h, w) → (b, c_out, h, w)
    }

    /// <summary>cv1, the bottlenecks, cv2, Concat, cv3.</summary>
    public string Emit(OnnxGraph graph, string prefix, IReadOnlyList<string> inputs)
    {
        string main = graph.Emit(m, prefix + ".m", [cv1.Emit(graph, prefix + ".cv1", inputs)]);
        string side = cv2.Emit(graph, prefix + ".cv2", inputs);
        string both = graph.Node("Concat", $"/{prefix}/Concat", [main, side], OnnxGraph.Attr("axis", 1));
        return cv3.Emit(graph, prefix + ".cv3", [both]);
    }
}
