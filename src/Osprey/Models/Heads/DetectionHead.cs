using Osprey.Evaluation;
using Osprey.Losses;
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
/// branch, <see cref="V10Detect"/>) also overrides <see cref="forward"/>, <see cref="Decode"/>, <see cref="Postprocess"/>,
/// <see cref="CreateLoss"/> and <see cref="Emit"/>.
/// <see cref="forward"/> returns the raw maps, one per level, each (b, 4·reg_max + nc, h, w); <see cref="Decode"/> turns
/// them into Ultralytics' inference layout (b, 4 + nc, A): centre-x, centre-y, w, h in input pixels, then sigmoid scores;
/// <see cref="Postprocess"/> turns that into detections (NMS).
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
    private readonly long boxHidden;
    private readonly long classHidden;
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
        boxHidden = Math.Max(Math.Max(16, inputChannels[0] / 4), regMax * 4);   // c2
        classHidden = Math.Max(inputChannels[0], Math.Min(nc, 100));            // c3
        foreach (long channels in inputChannels)
        {
            var (box, cls) = NewLevel(channels);
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

    /// <summary>
    /// True for a head whose inference output is already the detections (Ultralytics' <c>end2end</c>: YOLOv10's
    /// one-to-one branch, top-k without NMS); false for the NMS heads.
    /// </summary>
    public virtual bool EndToEnd => false;

    /// <summary>
    /// Branch lists Ultralytics' head makes with <c>copy.deepcopy</c> (0 here): each copy has its own copy of the SiLU its
    /// Convs share (<c>Conv.default_act</c>), one more module in <c>model.modules()</c> and so in its summary's layer count.
    /// </summary>
    public virtual int CopiedBranchLists => 0;

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
    public virtual void InitializeBiases() => InitializeBiases(boxBranches, classBranches);

    /// <summary>The bias prior of <see cref="InitializeBiases()"/> on the given branches (one per level).</summary>
    protected void InitializeBiases(IReadOnlyList<Branch> boxes, IReadOnlyList<Branch> classes)
    {
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        for (int i = 0; i < Levels; i++)
        {
            boxes[i].Output.bias!.fill_(1.0);
            double prior = Math.Log(5.0 / Nc / Math.Pow(640.0 / strides[i], 2));
            classes[i].Output.bias!.fill_(prior);
        }
    }

    /// <summary>Raw per-level maps, each (b, 4·reg_max + nc, h, w) = cat(cv2, cv3) along channels.</summary>
    public override Tensor[] forward(Tensor[] features) => LevelMaps(boxBranches, classBranches, features);

    /// <summary>Decodes raw maps into (b, 4 + nc, A): xywh boxes in input pixels, then sigmoid class scores.</summary>
    public virtual Tensor Decode(IReadOnlyList<Tensor> maps) => DecodeLevels(maps, xywh: true);

    /// <summary>
    /// Detections of a decoded batch (<see cref="Decode"/>'s output): per image (n, 6) rows [x1, y1, x2, y2, conf, cls]
    /// in input pixels, by descending conf. Here Ultralytics' class-offset NMS (<see cref="Nms.NonMaxSuppression"/>).
    /// </summary>
    public virtual IReadOnlyList<Tensor> Postprocess(Tensor prediction, NmsOptions options) =>
        Nms.NonMaxSuppression(prediction, options);

    /// <summary>The training loss of this head's maps: here Ultralytics' <c>v8DetectionLoss</c>.</summary>
    public virtual IDetectionLoss CreateLoss(DetectionLossOptions options) => new DetectionLoss(options);

    /// <summary>Called by <see cref="DetectionModel.Fuse"/> once every Conv is fused (inference only from then on).</summary>
    public virtual void OnFused()
    {
    }

    /// <summary>
    /// Whether an export holds the weights of the head's module <paramref name="name"/> (relative to the head, e.g.
    /// <c>cv2.0.0</c>); an import leaves the others to <see cref="AfterImport"/>. Every module here.
    /// </summary>
    public virtual bool ExportsModule(string name) => true;

    /// <summary>Called by the ONNX import once the exported weights are loaded (see <see cref="ExportsModule"/>).</summary>
    public virtual void AfterImport()
    {
    }

    /// <summary>The branches of each level (layers and the 1×1 output), in the order their weights are drawn.</summary>
    /// <param name="channels">Channels of the level's feature map.</param>
    protected (Branch Box, Branch Class) NewLevel(long channels)
    {
        // The 1×1 outputs first, then the layers: the order their initial weights are drawn in.
        var boxOutput = Conv2d(boxHidden, 4 * RegMax, 1);
        var classOutput = Conv2d(classHidden, Nc, 1);
        var box = new Branch(BoxLayers(channels, boxHidden), boxOutput);
        var cls = new Branch(ClassLayers(channels, classHidden), classOutput);
        return (box, cls);
    }

    /// <summary>
    /// Removes the branches <c>cv2</c> and <c>cv3</c> from the module (their parameters leave the model and its state
    /// dict), for a head that computes without them once fused.
    /// </summary>
    protected void RemoveBranches()
    {
        _internal_submodules.Remove(nameof(cv2));
        _internal_submodules.Remove(nameof(cv3));
        cv2.Dispose();
        cv3.Dispose();
        boxBranches.Clear();
        classBranches.Clear();
    }

    /// <summary>The box branch of each level (<c>cv2</c>).</summary>
    protected IReadOnlyList<Branch> BoxBranches => boxBranches;

    /// <summary>The class branch of each level (<c>cv3</c>).</summary>
    protected IReadOnlyList<Branch> ClassBranches => classBranches;

    /// <summary>Per level cat(box branch, class branch) along channels: Levels × (b, 4·reg_max + nc, h, w).</summary>
    protected Tensor[] LevelMaps(IReadOnlyList<Branch> boxes, IReadOnlyList<Branch> classes, IReadOnlyList<Tensor> features)
    {
        var maps = new Tensor[Levels];
        for (int i = 0; i < Levels; i++)
            maps[i] = cat(new[] { Run(boxes[i], features[i]), Run(classes[i], features[i]) }, 1); // (b, no, h_i, w_i)
        return maps;
    }

    /// <summary>
    /// Decodes one map per level into (b, 4 + nc, A): boxes in input pixels (centre-x, centre-y, w, h when
    /// <paramref name="xywh"/>, else x1, y1, x2, y2), then sigmoid class scores.
    /// </summary>
    protected Tensor DecodeLevels(IReadOnlyList<Tensor> maps, bool xywh)
    {
        using var scope = NewDisposeScope();
        long batch = maps[0].shape[0];
        var flat = cat(maps.Select(map => map.view(batch, OutputsPerAnchor, map.shape[2] * map.shape[3])).ToArray(), 2); // (b, no, A); b may be 0
        var (anchorPoints, strideTensor) = anchorCache.Get(maps, strides);                     // (1, 2, A), (1, A)
        var parts = flat.split(new long[] { 4L * RegMax, Nc }, 1);        // (b, 4·reg_max, A), (b, nc, A)
        var distances = dfl.call(parts[0]);                                 // (b, 4, A) ltrb in grid units
        var boxes = Anchors.DistToBox(distances, anchorPoints, xywh: xywh, dim: 1) * strideTensor; // (b, 4, A) px
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
        var (box, scores) = EmitDecoded(graph, prefix, inputs, nameof(cv2), boxBranches, nameof(cv3), classBranches, xywh: true);
        return graph.NamedNode("Concat", $"/{prefix}/Concat_{Levels + 2}", [box, scores], OnnxGraph.OutputName,
            OnnxGraph.Attr("axis", 1));                                                                    // (b, 4 + nc, A)
    }

    /// <summary>The dimensions of <see cref="OnnxGraph.OutputName"/> after the batch: (4 + nc, A); A is named
    /// <c>anchors</c> in a dynamic export.</summary>
    /// <param name="dynamic">Symbolic sizes.</param>
    /// <param name="anchors">Anchors at the export size.</param>
    public virtual object[] OnnxOutputShape(bool dynamic, long anchors) =>
        dynamic ? new object[] { 4L + Nc, "anchors" } : new object[] { 4L + Nc, anchors };

    /// <summary>
    /// <see cref="DecodeLevels"/> in ONNX for the named branches (<paramref name="boxName"/>.i, <paramref name="className"/>.i):
    /// the box rows (b, 4, A) in input pixels and the sigmoid scores (b, nc, A).
    /// </summary>
    protected (string Boxes, string Scores) EmitDecoded(OnnxGraph graph, string prefix, IReadOnlyList<string> inputs,
        string boxName, IReadOnlyList<Branch> boxes, string className, IReadOnlyList<Branch> classes, bool xywh)
    {
        var flat = new string[Levels];
        for (int i = 0; i < Levels; i++)
        {
            string suffix = i == 0 ? "" : "_" + i;
            string level = graph.Node("Concat", $"/{prefix}/Concat{suffix}",
                [EmitBranch(graph, prefix, boxName, i, boxes[i], inputs[i]), EmitBranch(graph, prefix, className, i, classes[i], inputs[i])],
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
        string box;
        if (xywh)
        {
            string sum = graph.Node("Add", $"/{prefix}/Add_1", [x1y1, x2y2]);
            string two;
            using (NewDisposeScope()) two = graph.Initializer($"/{prefix}/Constant_two", tensor(new[] { 2f }));
            string centre = graph.Node("Div", $"/{prefix}/Div", [sum, two]);
            string size = graph.Node("Sub", $"/{prefix}/Sub_1", [x2y2, x1y1]);
            box = graph.Node("Concat", $"/{prefix}/Concat_{Levels + 1}", [centre, size], OnnxGraph.Attr("axis", 1));
        }
        else box = graph.Node("Concat", $"/{prefix}/Concat_{Levels + 1}", [x1y1, x2y2], OnnxGraph.Attr("axis", 1));
        box = graph.Node("Mul", $"/{prefix}/Mul", [box, strideRow]);                                        // (b, 4, A) px
        string scores = graph.Node("Sigmoid", $"/{prefix}/Sigmoid", [parts[1]]);                           // (b, nc, A)
        return (box, scores);
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

    // Level i of a branch: its layers (model.22.cv2.0.0, …), then the output Conv (/model.22/cv2.0/cv2.0.2/Conv).
    private static string EmitBranch(OnnxGraph graph, string prefix, string name, int level, Branch branch, string input)
    {
        string x = input;
        for (int j = 0; j < branch.Layers.Length; j++) x = graph.Emit(branch.Layers[j], $"{prefix}.{name}.{level}.{j}", [x]);
        string key = $"{prefix}.{name}.{level}.{branch.Layers.Length}";
        return graph.Conv($"/{prefix}/{name}.{level}/{name}.{level}.{branch.Layers.Length}/Conv", x, key, branch.Output);
    }

    /// <summary>One level's branch: its layers and the 1×1 output convolution.</summary>
    /// <param name="Layers">The layers before the output (<c>cv2[i][:-1]</c>).</param>
    /// <param name="Output">The 1×1 output convolution (<c>cv2[i][-1]</c>).</param>
    protected sealed record Branch(Module<Tensor, Tensor>[] Layers, Conv2d Output)
    {
        /// <summary>The branch as Ultralytics' Sequential (layers, then the output): what is registered.</summary>
        public Sequential ToSequential() => Sequential(Layers.Append<Module<Tensor, Tensor>>(Output).ToArray());
    }
}
