using Osprey.Models.Blocks;
using Osprey.Onnx;
using TorchSharp.Modules;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace Osprey.Models.Heads;

/// <summary>
/// What every YOLO detect head shares (Ultralytics' <c>Detect</c>): per level a box branch <c>cv2[i]</c> (layers, then a
/// 1×1 Conv2d to 4·reg_max DFL logits) and a class branch <c>cv3[i]</c> (layers, then a 1×1 Conv2d to nc logits), the
/// DFL, the strides, the bias prior, the decoding and its ONNX form. A family's head is a subclass that builds the
/// layers of each branch (<see cref="BoxLayers"/>, <see cref="ClassLayers"/>): YOLOv8's <see cref="Detect"/> uses two
/// 3×3 Convs in each; YOLO11's class branch is depthwise-separable; a head with more outputs (YOLOv10's one-to-one
/// branch) also overrides <see cref="forward"/>, <see cref="Decode"/> and <see cref="Emit"/>.
/// <see cref="forward"/> returns the raw maps, one per level, each (b, 4·reg_max + nc, h, w); <see cref="Decode"/> turns
/// them into Ultralytics' inference layout (b, 4 + nc, A): centre-x, centre-y, w, h in input pixels, then sigmoid scores.
/// </summary>
public abstract class DetectionHead : Module<Tensor[], Tensor[]>, ICastPolicyAware, IOnnxBlock
{
    /// <summary>DFL bins per box side.</summary>
    public const int DefaultRegMax = 16;

    private readonly ModuleList<Sequential> cv2 = new();
    private readonly ModuleList<Sequential> cv3 = new();
    private readonly DFL dfl;
    private readonly List<Branch> boxBranches = new();
    private readonly List<Branch> classBranches = new();
    private readonly AnchorCache anchorCache = new();
    private float[] strides;

    /// <summary>
    /// Builds both branches of every level and the DFL, registered as <c>cv2</c>, <c>cv3</c>, <c>dfl</c> (Ultralytics'
    /// state-dict keys). Calls <see cref="BoxLayers"/> and <see cref="ClassLayers"/>: overrides run before the
    /// subclass's constructor body, so they must build from their arguments only.
    /// </summary>
    /// <param name="name">Module name.</param>
    /// <param name="nc">Number of classes.</param>
    /// <param name="inputChannels">Channels of each input level (P3, P4, P5).</param>
    /// <param name="regMax">DFL bins per side.</param>
    protected DetectionHead(string name, int nc, IReadOnlyList<long> inputChannels, int regMax) : base(name)
    {
        Nc = nc;
        RegMax = regMax;
        Levels = inputChannels.Count;
        strides = Levels == 3 ? new[] { 8f, 16f, 32f } : new float[Levels];
        long boxHidden = Math.Max(Math.Max(16, inputChannels[0] / 4), regMax * 4);   // c2
        long classHidden = Math.Max(inputChannels[0], Math.Min(nc, 100));            // c3
        foreach (long channels in inputChannels)
        {
            // The 1×1 outputs first, then the layers: the order their initial weights are drawn in.
            var boxOutput = Conv2d(boxHidden, 4 * regMax, 1);
            var classOutput = Conv2d(classHidden, nc, 1);
            var box = new Branch(BoxLayers(channels, boxHidden), boxOutput);
            var cls = new Branch(ClassLayers(channels, classHidden), classOutput);
            boxBranches.Add(box);
            classBranches.Add(cls);
            cv2.Add(box.ToSequential());
            cv3.Add(cls.ToSequential());
        }
        dfl = new DFL(regMax);
        register_module(nameof(cv2), cv2);
        register_module(nameof(cv3), cv3);
        register_module(nameof(dfl), dfl);
    }

    /// <summary>Number of classes.</summary>
    public int Nc { get; }

    /// <summary>DFL bins per side.</summary>
    public int RegMax { get; }

    /// <summary>Number of detection levels (3).</summary>
    public int Levels { get; }

    /// <summary>Outputs per anchor in the raw maps: nc + 4·reg_max.</summary>
    public virtual int OutputsPerAnchor => Nc + 4 * RegMax;

    /// <summary>Stride of each level in input pixels (8, 16, 32 for P3–P5).</summary>
    public IReadOnlyList<float> Strides => strides;

    /// <summary>How the branches' final 1×1 convolutions compute (their layers carry their own policy).</summary>
    public CastPolicy Policy { get; set; } = CastPolicy.Float32;

    /// <summary>
    /// In eval mode, the function that turns class logits into scores instead of libtorch's sigmoid (an imported ONNX
    /// model uses ONNX Runtime's, <see cref="Onnx.MlasLogistic"/>); null = sigmoid.
    /// </summary>
    internal Func<Tensor, Tensor>? ScoreFunction { get; set; }

    /// <summary>The DFL integral.</summary>
    internal DFL Dfl => dfl;

    /// <summary>The layers of a level's box branch before its 1×1 output convolution (<c>cv2[i][:-1]</c>).</summary>
    /// <param name="inputChannels">Channels of the level's feature map.</param>
    /// <param name="hiddenChannels">c2 = max(16, ch[0] / 4, 4·reg_max): what the output convolution takes.</param>
    protected abstract Module<Tensor, Tensor>[] BoxLayers(long inputChannels, long hiddenChannels);

    /// <summary>The layers of a level's class branch before its 1×1 output convolution (<c>cv3[i][:-1]</c>).</summary>
    /// <param name="inputChannels">Channels of the level's feature map.</param>
    /// <param name="hiddenChannels">c3 = max(ch[0], min(nc, 100)): what the output convolution takes.</param>
    protected abstract Module<Tensor, Tensor>[] ClassLayers(long inputChannels, long hiddenChannels);

    /// <summary>Sets the strides (the model measures them with a dry run) and invalidates cached anchors.</summary>
    public void SetStrides(IReadOnlyList<float> levelStrides)
    {
        if (levelStrides.Count != Levels)
            throw new ArgumentException($"{GetType().Name} has {Levels} levels but {levelStrides.Count} strides were given.");
        strides = levelStrides.ToArray();
        anchorCache.Clear();
    }

    /// <summary>
    /// Ultralytics' bias prior: box logits 1.0; class logits log(5 / nc / (640 / stride)²) (≈ 5 objects per image).
    /// </summary>
    public virtual void InitializeBiases()
    {
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        for (int i = 0; i < Levels; i++)
        {
            boxBranches[i].Output.bias!.fill_(1.0);
            double prior = Math.Log(5.0 / Nc / Math.Pow(640.0 / strides[i], 2));
            classBranches[i].Output.bias!.fill_(prior);
        }
    }

    /// <summary>Raw per-level maps, each (b, 4·reg_max + nc, h, w) = cat(cv2, cv3) along channels.</summary>
    public override Tensor[] forward(Tensor[] features)
    {
        var maps = new Tensor[Levels];
        for (int i = 0; i < Levels; i++)
            maps[i] = cat(new[] { Run(boxBranches[i], features[i]), Run(classBranches[i], features[i]) }, 1); // (b, no, h_i, w_i)
        return maps;
    }

    /// <summary>Decodes raw maps into (b, 4 + nc, A): xywh boxes in input pixels, then sigmoid class scores.</summary>
    public virtual Tensor Decode(IReadOnlyList<Tensor> maps)
    {
        using var scope = NewDisposeScope();
        long batch = maps[0].shape[0];
        var flat = cat(maps.Select(map => map.view(batch, OutputsPerAnchor, -1)).ToArray(), 2); // (b, no, A)
        var (anchorPoints, strideTensor) = anchorCache.Get(maps, strides);                     // (1, 2, A), (1, A)
        var parts = flat.split(new long[] { 4L * RegMax, Nc }, 1);        // (b, 4·reg_max, A), (b, nc, A)
        var distances = dfl.call(parts[0]);                                 // (b, 4, A) ltrb in grid units
        var boxes = Anchors.DistToBox(distances, anchorPoints, xywh: true, dim: 1) * strideTensor; // (b, 4, A) px
        var scores = !training && ScoreFunction is { } score ? score(parts[1]) : parts[1].sigmoid(); // (b, nc, A)
        return cat(new[] { boxes, scores }, 1).MoveToOuterDisposeScope();                      // (b, 4+nc, A)
    }

    /// <summary>Raw maps → decoded predictions in one call: (b, 4 + nc, A).</summary>
    public Tensor Predict(Tensor[] features)
    {
        using var scope = NewDisposeScope();
        return Decode(forward(features)).MoveToOuterDisposeScope();
    }

    /// <summary>
    /// The head as Ultralytics exports it: per level both branches, Concat and Reshape to (b, no, h·w); Concat of the
    /// levels, Split into DFL logits and class logits; the DFL; anchors and strides (constants, or computed from the
    /// maps' shapes when dynamic); the box arithmetic; Sigmoid; the final Concat named <see cref="OnnxGraph.OutputName"/>.
    /// </summary>
    public virtual string Emit(OnnxGraph graph, string prefix, IReadOnlyList<string> inputs)
    {
        var flat = new string[Levels];
        for (int i = 0; i < Levels; i++)
        {
            string suffix = i == 0 ? "" : "_" + i;
            string level = graph.Node("Concat", $"/{prefix}/Concat{suffix}",
                [EmitBranch(graph, prefix, nameof(cv2), i, inputs[i]), EmitBranch(graph, prefix, nameof(cv3), i, inputs[i])],
                OnnxGraph.Attr("axis", 1));                                                             // (b, no, h, w)
            flat[i] = graph.Node("Reshape", $"/{prefix}/Reshape{suffix}", [level, graph.Int64s(0, OutputsPerAnchor, -1)]);
        }
        string all = graph.Node("Concat", $"/{prefix}/Concat_{Levels}", flat, OnnxGraph.Attr("axis", 2));  // (b, no, A)
        var parts = graph.Split($"/{prefix}/Split", all, 4L * RegMax, Nc);                                // (b, 64, A), (b, nc, A)
        string distances = dfl.Emit(graph, $"{prefix}.dfl", [parts[0]]);                                  // (b, 4, A)
        var (anchors, strideRow) = graph.Options.Dynamic ? OnnxAnchors.Dynamic(graph, prefix, strides, inputs)
            : OnnxAnchors.Static(graph, prefix, strides);                                                  // (1, 2, A), (1, 1, A)
        var ltrb = graph.Split($"/{prefix}/Split_1", distances, 2, 2);
        string x1y1 = graph.Node("Sub", $"/{prefix}/Sub", [anchors, ltrb[0]]);
        string x2y2 = graph.Node("Add", $"/{prefix}/Add", [anchors, ltrb[1]]);
        string sum = graph.Node("Add", $"/{prefix}/Add_1", [x1y1, x2y2]);
        string two;
        using (NewDisposeScope()) two = graph.Initializer($"/{prefix}/Constant_two", tensor(new[] { 2f }));
        string centre = graph.Node("Div", $"/{prefix}/Div", [sum, two]);
        string size = graph.Node("Sub", $"/{prefix}/Sub_1", [x2y2, x1y1]);
        string box = graph.Node("Concat", $"/{prefix}/Concat_{Levels + 1}", [centre, size], OnnxGraph.Attr("axis", 1));
        box = graph.Node("Mul", $"/{prefix}/Mul", [box, strideRow]);                                        // (b, 4, A) px
        string scores = graph.Node("Sigmoid", $"/{prefix}/Sigmoid", [parts[1]]);                           // (b, nc, A)
        return graph.NamedNode("Concat", $"/{prefix}/Concat_{Levels + 2}", [box, scores], OnnxGraph.OutputName,
            OnnxGraph.Attr("axis", 1));                                                                    // (b, 4 + nc, A)
    }

    /// <inheritdoc/>
    protected override void Dispose(bool disposing)
    {
        if (disposing) anchorCache.Clear();
        base.Dispose(disposing);
    }

    // A branch layer by layer, so that its final plain Conv2d computes under the cast policy too (the layers carry
    // their own); intermediate results are released as Sequential releases them.
    private Tensor Run(Branch branch, Tensor x)
    {
        var current = x;
        foreach (var layer in branch.Layers)
        {
            var next = layer.call(current);
            if (!ReferenceEquals(current, x) && !ReferenceEquals(current, next)) current.Dispose();
            current = next;
        }
        var output = Policy.Conv(branch.Output, current);
        if (!ReferenceEquals(current, x)) current.Dispose();
        return output;
    }

    // Level i of branch cv2 or cv3: its layers (model.22.cv2.0.0, …), then the output Conv (/model.22/cv2.0/cv2.0.2/Conv).
    private string EmitBranch(OnnxGraph graph, string prefix, string name, int level, string input)
    {
        var branch = name == nameof(cv2) ? boxBranches[level] : classBranches[level];
        string x = input;
        for (int j = 0; j < branch.Layers.Length; j++) x = graph.Emit(branch.Layers[j], $"{prefix}.{name}.{level}.{j}", [x]);
        string key = $"{prefix}.{name}.{level}.{branch.Layers.Length}";
        return graph.Conv($"/{prefix}/{name}.{level}/{name}.{level}.{branch.Layers.Length}/Conv", x, key, branch.Output);
    }

    /// <summary>One level's branch: its layers and the 1×1 output convolution.</summary>
    private sealed record Branch(Module<Tensor, Tensor>[] Layers, Conv2d Output)
    {
        public Sequential ToSequential() => Sequential(Layers.Append<Module<Tensor, Tensor>>(Output).ToArray());
    }
}
