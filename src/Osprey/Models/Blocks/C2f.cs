using Osprey.Onnx;
using TorchSharp.Modules;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace Osprey.Models.Blocks;

/// <summary>
/// Ultralytics <c>C2f</c>: cv1 (1×1) to 2c channels, split in two, chain n bottlenecks on the last split,
/// concatenate all (2+n)c channels and project with cv2 (1×1). Not sealed: Ultralytics' C2f subclasses (YOLO11's
/// <see cref="C3k2"/>, YOLOv10's <see cref="C2fCIB"/>) keep cv1, cv2 and the forward and change only the blocks of <c>m</c>.
/// </summary>
public class C2f : Module<Tensor, Tensor>, IOnnxBlock
{
    private readonly Conv cv1;
    private readonly Conv cv2;
    private readonly ModuleList<Module<Tensor, Tensor>> m;

    /// <param name="inChannels">Input channels.</param>
    /// <param name="outChannels">Output channels.</param>
    /// <param name="repeats">Number of bottlenecks.</param>
    /// <param name="shortcut">Residual bottlenecks.</param>
    /// <param name="groups">Groups of the bottlenecks' second conv.</param>
    /// <param name="expansion">Hidden channels c = int(outChannels × expansion).</param>
    public C2f(long inChannels, long outChannels, int repeats = 1, bool shortcut = false, long groups = 1,
        double expansion = 0.5)
        : this(nameof(C2f), inChannels, outChannels, repeats, expansion,
            hidden => new Bottleneck(hidden, hidden, shortcut, groups, 3, 3, expansion: 1.0))
    {
    }

    /// <summary>For subclasses: cv1, cv2 and <paramref name="repeats"/> blocks made by <paramref name="block"/>.</summary>
    /// <param name="name">Module name.</param>
    /// <param name="inChannels">Input channels.</param>
    /// <param name="outChannels">Output channels.</param>
    /// <param name="repeats">Number of blocks in <c>m</c>.</param>
    /// <param name="expansion">Hidden channels c = int(outChannels × expansion).</param>
    /// <param name="block">One block of <c>m</c> from the hidden channels c (c in, c out).</param>
    protected C2f(string name, long inChannels, long outChannels, int repeats, double expansion,
        Func<long, Module<Tensor, Tensor>> block) : base(name)
    {
        long hidden = (long)(outChannels * expansion);
        Hidden = hidden;
        cv1 = new Conv(inChannels, 2 * hidden, 1, 1);
        cv2 = new Conv((2 + repeats) * hidden, outChannels, 1);
        m = new ModuleList<Module<Tensor, Tensor>>();
        for (int i = 0; i < repeats; i++) m.Add(block(hidden));
        // Explicit, in field order: RegisterComponents reflects over the runtime type, which misses a subclass's
        // inherited private fields.
        register_module(nameof(cv1), cv1);
        register_module(nameof(cv2), cv2);
        register_module(nameof(m), m);
    }

    /// <summary>Hidden channels c of each split.</summary>
    public long Hidden { get; }

    /// <inheritdoc/>
    public override Tensor forward(Tensor x)
    {
        var parts = cv1.call(x).chunk(2, 1).ToList();   // 2 × (b, c, h, w)
        foreach (var bottleneck in m)
            parts.Add(bottleneck.call(parts[^1]));      // + n × (b, c, h, w)
        return cv2.call(cat(parts, 1));                 // (b, (2+n)c, h, w) → (b, c_out, h, w)
    }

    /// <summary>cv1, Split in two, the bottlenecks on the last part, Concat of all parts, cv2.</summary>
    public string Emit(OnnxGraph graph, string prefix, IReadOnlyList<string> inputs)
    {
        string y = cv1.Emit(graph, prefix + ".cv1", inputs);
        var parts = graph.Split($"/{prefix}/Split", y, Hidden, Hidden).ToList();
        for (int j = 0; j < m.Count; j++)
            parts.Add(graph.Emit(m[j], $"{prefix}.m.{j}", [parts[^1]]));
        string all = graph.Node("Concat", $"/{prefix}/Concat", parts, OnnxGraph.Attr("axis", 1));
        return cv2.Emit(graph, prefix + ".cv2", [all]);
    }
}
