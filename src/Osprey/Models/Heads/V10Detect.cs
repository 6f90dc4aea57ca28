using Osprey.Evaluation;
using Osprey.Losses;
using Osprey.Models.Blocks;
using Osprey.Models.Building;
using Osprey.Onnx;
using Osprey.Runtime;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace Osprey.Models.Heads;

/// <summary>
/// Ultralytics' YOLOv10 head <c>v10Detect</c> (nn/modules/head.py, <c>end2end = True</c>): the box branch <c>cv2</c> as
/// YOLOv8's; the light class branch <c>cv3</c> = [Sequential(Conv(x, x, 3, g=x), Conv(x, c3, 1)), Sequential(Conv(c3, c3,
/// 3, g=c3), Conv(c3, c3, 1)), Conv2d(c3, nc, 1)]; and the one-to-one copies <c>one2one_cv2</c>, <c>one2one_cv3</c>
/// (Ultralytics' deepcopy: the same initial weights) that run on detached features, so that their loss trains the head
/// only. The state-dict keys are Ultralytics' (<c>model.23.one2one_cv3.0.0.0.conv.weight</c>).
/// <para>Training maps (<see cref="forward"/>): the one-to-many map of each level, then the one-to-one map of each level
/// (2·L maps, each (b, 4·reg_max + nc, h, w)); their loss is <see cref="E2EDetectLoss"/>. Once fused (Ultralytics'
/// <c>fuse</c> drops <c>cv2</c>/<c>cv3</c>) only the one-to-one maps are computed.</para>
/// <para>Inference (<see cref="Decode"/>, Ultralytics' <c>forward_end2end</c> + <c>postprocess</c>): the one-to-one maps
/// decoded to xyxy boxes in input pixels and sigmoid scores, then without NMS the k = min(max_det, A) anchors with the
/// best class score, and among their k·nc (anchor, class) scores the best k: (b, k, 6) rows [x1, y1, x2, y2, score,
/// class] by descending score. <see cref="Postprocess"/> keeps the rows above the confidence threshold, the first
/// max_det of them (<see cref="EndToEndDetections"/>).</para>
/// </summary>
public sealed class V10Detect : DetectionHead
{
    /// <summary>The YAML name (<c>v10Detect</c>).</summary>
    public const string YamlName = "v10Detect";

    /// <summary>Ultralytics' <c>Detect.max_det</c> (300): the detections the head's top-k keeps.</summary>
    public const int DefaultMaxDetections = 300;

    // Field names are the state-dict names: the model's RegisterComponents registers fields by name.
    private readonly ModuleList<Sequential> one2one_cv2 = new();
    private readonly ModuleList<Sequential> one2one_cv3 = new();
    private readonly List<Branch> oneToOneBoxes = new();
    private readonly List<Branch> oneToOneClasses = new();
    private bool oneToManyDropped;

    /// <param name="nc">Number of classes.</param>
    /// <param name="inputChannels">Channels of each input level (P3, P4, P5).</param>
    /// <param name="regMax">DFL bins per side.</param>
    public V10Detect(int nc, IReadOnlyList<long> inputChannels, int regMax = DefaultRegMax)
        : base(YamlName, nc, inputChannels, regMax)
    {
        for (int i = 0; i < Levels; i++)
        {
            var (box, cls) = NewLevel(inputChannels[i]);
            oneToOneBoxes.Add(box);
            oneToOneClasses.Add(cls);
            one2one_cv2.Add(box.ToSequential());
            one2one_cv3.Add(cls.ToSequential());
        }
        register_module(nameof(one2one_cv2), one2one_cv2);
        register_module(nameof(one2one_cv3), one2one_cv3);
        Copy(BoxBranches, oneToOneBoxes);                                   // copy.deepcopy(self.cv2)
        Copy(ClassBranches, oneToOneClasses);                               // copy.deepcopy(self.cv3)
    }

    /// <summary>Builds the YAML row <c>[from, 1, v10Detect, [nc]]</c> (Ultralytics appends the input channels).</summary>
    public static LayerBuild Build(LayerContext c)
    {
        int nc = checked((int)c.Int(0, c.Nc));
        var head = new V10Detect(nc, c.InputChannels.ToArray());
        return new LayerBuild(head, head.OutputsPerAnchor, $"[{nc}, [{string.Join(", ", c.InputChannels)}]]");
    }

    /// <inheritdoc/>
    public override bool EndToEnd => true;

    /// <inheritdoc/>
    public override int CopiedBranchLists => 2;                             // one2one_cv2, one2one_cv3

    /// <summary>Ultralytics' <c>max_det</c> of the head: how many rows the top-k keeps (300).</summary>
    public int MaxDetections { get; set; } = DefaultMaxDetections;

    /// <summary>Conv(x, c2, 3), Conv(c2, c2, 3), as YOLOv8's box branch.</summary>
    protected override Module<Tensor, Tensor>[] BoxLayers(long inputChannels, long hiddenChannels) =>
        new Module<Tensor, Tensor>[] { new Conv(inputChannels, hiddenChannels, 3), new Conv(hiddenChannels, hiddenChannels, 3) };

    /// <summary>Sequential(Conv(x, x, 3, g=x), Conv(x, c3, 1)), Sequential(Conv(c3, c3, 3, g=c3), Conv(c3, c3, 1)).</summary>
    protected override Module<Tensor, Tensor>[] ClassLayers(long inputChannels, long hiddenChannels) => new Module<Tensor, Tensor>[]
    {
        Sequential(new Conv(inputChannels, inputChannels, 3, groups: inputChannels), new Conv(inputChannels, hiddenChannels, 1)),
        Sequential(new Conv(hiddenChannels, hiddenChannels, 3, groups: hiddenChannels), new Conv(hiddenChannels, hiddenChannels, 1)),
    };

    /// <summary>Ultralytics' bias_init on both branches: box logits 1.0, class logits log(5 / nc / (640 / stride)²).</summary>
    public override void InitializeBiases()
    {
        base.InitializeBiases();
        InitializeBiases(oneToOneBoxes, oneToOneClasses);
    }

    /// <summary>
    /// The one-to-many maps of every level, then the one-to-one maps (computed on detached features); once fused, the
    /// one-to-one maps only. Each (b, 4·reg_max + nc, h, w).
    /// </summary>
    public override Tensor[] forward(Tensor[] features)
    {
        var detached = features.Select(f => f.detach()).ToArray();          // no gradient from the one-to-one loss to the backbone
        var oneToOne = LevelMaps(oneToOneBoxes, oneToOneClasses, detached);   // L × (b, no, h_i, w_i)
        if (oneToManyDropped) return oneToOne;
        return base.forward(features).Concat(oneToOne).ToArray();          // 2L maps
    }

    /// <summary>The one-to-one maps (the last L of <paramref name="maps"/>) decoded and reduced to the top-k detections:
    /// (b, k, 6) [x1, y1, x2, y2, score, class], k = min(<see cref="MaxDetections"/>, A).</summary>
    public override Tensor Decode(IReadOnlyList<Tensor> maps)
    {
        using var scope = NewDisposeScope();
        var decoded = DecodeLevels(OneToOneMaps(maps), xywh: false);       // (b, 4 + nc, A) xyxy px, scores
        return TopK(decoded, MaxDetections).MoveToOuterDisposeScope();      // (b, k, 6)
    }

    /// <summary>No NMS: the rows above the confidence threshold, the first max_det, the wanted classes.</summary>
    public override IReadOnlyList<Tensor> Postprocess(Tensor prediction, NmsOptions options) =>
        EndToEndDetections.Select(prediction, options);

    /// <summary>Ultralytics' <c>E2EDetectLoss</c>.</summary>
    public override IDetectionLoss CreateLoss(DetectionLossOptions options) => new E2EDetectLoss(options);

    /// <summary>Drops the one-to-many branch (Ultralytics' <c>v10Detect.fuse</c>: <c>cv2 = cv3 = Identity</c>), so that
    /// the fused model's parameters are Ultralytics' fused count.</summary>
    public override void OnFused()
    {
        oneToManyDropped = true;
        RemoveBranches();
    }

    /// <summary>An export holds the one-to-one branch, the DFL and no one-to-many layer (<c>cv2.*</c>, <c>cv3.*</c>).</summary>
    public override bool ExportsModule(string name) => !IsUnder(name, "cv2") && !IsUnder(name, "cv3");

    /// <summary>The one-to-many branches become copies of the imported one-to-one branches (as at construction).</summary>
    public override void AfterImport()
    {
        Copy(oneToOneBoxes, BoxBranches);
        Copy(oneToOneClasses, ClassBranches);
    }

    /// <summary>The one-to-one maps of a training output: its last L maps.</summary>
    public IReadOnlyList<Tensor> OneToOneMaps(IReadOnlyList<Tensor> maps)
    {
        if (maps.Count != Levels && maps.Count != 2 * Levels)
            throw new ArgumentException($"{YamlName} takes {Levels} or {2 * Levels} maps, got {maps.Count}.", nameof(maps));
        return maps.Skip(maps.Count - Levels).ToArray();
    }

    /// <summary>(k, 6) after the batch: k = min(max_det, A) at a static size, max_det when dynamic (Ultralytics' export
    /// traces k as a constant).</summary>
    public override object[] OnnxOutputShape(bool dynamic, long anchors) => new object[] { ExportK(dynamic, anchors), 6L };

    /// <summary>
    /// The one-to-one branch as Ultralytics exports it (the one-to-many branch is not in the graph): both branches of
    /// each level, the DFL, xyxy boxes × stride, Sigmoid, then the top-k of <see cref="TopK"/> in ONNX (ReduceMax, TopK,
    /// GatherElements, Flatten, TopK, Div, Mod) to <see cref="OnnxGraph.OutputName"/> (b, k, 6).
    /// </summary>
    public override string Emit(OnnxGraph graph, string prefix, IReadOnlyList<string> inputs)
    {
        var (boxes, scores) = EmitDecoded(graph, prefix, inputs, nameof(one2one_cv2), oneToOneBoxes, nameof(one2one_cv3),
            oneToOneClasses, xywh: false);                                                                // (b, 4, A), (b, nc, A)
        long anchors = graph.Options.Dynamic ? 0
            : Strides.Sum(s => (long)(graph.Options.Height / s) * (long)(graph.Options.Width / s));
        return EmitTopK(graph, prefix, boxes, scores, Nc, ExportK(graph.Options.Dynamic, anchors));
    }

    /// <summary>
    /// Ultralytics' <c>postprocess</c>: of decoded rows (b, 4 + nc, A), the k = min(<paramref name="maxDetections"/>, A)
    /// anchors with the highest class score, then the k best of their k·nc (anchor, class) scores, as (b, k, 6) rows
    /// [x1, y1, x2, y2, score, class] by descending score (an anchor may come out once per class).
    /// </summary>
    public static Tensor TopK(Tensor decoded, int maxDetections)
    {
        using var scope = NewDisposeScope();
        var rows = decoded.permute(0, 2, 1);                                              // (b, A, 4 + nc)
        long batch = rows.shape[0], anchors = rows.shape[1], nc = rows.shape[2] - 4;
        int k = (int)Math.Min(maxDetections, anchors);
        var boxes = rows.narrow(2, 0, 4);                                                 // (b, A, 4)
        var scores = rows.narrow(2, 4, nc);                                               // (b, A, nc)
        var index = scores.amax(new long[] { -1 }).topk(k).indexes.unsqueeze(-1);         // (b, k, 1) best anchors
        var topBoxes = boxes.gather(1, index.expand(batch, k, 4));                        // (b, k, 4)
        var topScores = scores.gather(1, index.expand(batch, k, nc));                     // (b, k, nc)
        var (values, pairs) = topScores.flatten(1).topk(k);                              // (b, k) best (anchor, class)
        var slot = pairs.div(Scalars.Int(nc), rounding_mode: RoundingMode.floor);         // (b, k) index // nc
        var cls = pairs.remainder(Scalars.Int(nc));                                       // (b, k) index % nc
        var selected = topBoxes.gather(1, slot.unsqueeze(-1).expand(batch, k, 4));        // (b, k, 4)
        return cat(new[] { selected, values.unsqueeze(-1), cls.unsqueeze(-1).to_type(values.dtype) }, -1)
            .MoveToOuterDisposeScope();                                                   // (b, k, 6)
    }

    /// <summary>
    /// <see cref="TopK"/> in ONNX on box rows (b, 4, A) and scores (b, nc, A); the output (b, k, 6) is named
    /// <see cref="OnnxGraph.OutputName"/>.
    /// </summary>
    internal static string EmitTopK(OnnxGraph graph, string prefix, string boxes, string scores, long nc, long k)
    {
        string p = $"/{prefix}";
        string boxRows = graph.Node("Transpose", p + "/Transpose", [boxes], OnnxGraph.Attr("perm", 0, 2, 1));      // (b, A, 4)
        string scoreRows = graph.Node("Transpose", p + "/Transpose_1", [scores], OnnxGraph.Attr("perm", 0, 2, 1)); // (b, A, nc)
        string best = graph.Options.Opset >= 18
            ? graph.Node("ReduceMax", p + "/ReduceMax", [scoreRows, graph.Int64s(-1)], OnnxGraph.Attr("keepdims", 0))
            : graph.Node("ReduceMax", p + "/ReduceMax", [scoreRows], OnnxGraph.Attr("axes", -1), OnnxGraph.Attr("keepdims", 0)); // (b, A)
        string kInput = graph.Int64s(k);
        var anchorsTop = graph.Nodes("TopK", p + "/TopK", [best, kInput], 2, TopKAttributes());                    // (b, k) ×2
        string index = graph.Unsqueeze(p + "/Unsqueeze", anchorsTop[1], 2);                                          // (b, k, 1)
        string topBoxes = graph.Node("GatherElements", p + "/GatherElements",
            [boxRows, graph.Node("Expand", p + "/Expand", [index, graph.Int64s(1, 1, 4)])], OnnxGraph.Attr("axis", 1));    // (b, k, 4)
        string topScores = graph.Node("GatherElements", p + "/GatherElements_1",
            [scoreRows, graph.Node("Expand", p + "/Expand_1", [index, graph.Int64s(1, 1, nc)])], OnnxGraph.Attr("axis", 1)); // (b, k, nc)
        string flat = graph.Node("Flatten", p + "/Flatten", [topScores], OnnxGraph.Attr("axis", 1));               // (b, k·nc)
        var pairs = graph.Nodes("TopK", p + "/TopK_1", [flat, kInput], 2, TopKAttributes());                       // (b, k) ×2
        string classes = graph.Int64s(nc);
        string slot = graph.Node("Div", p + "/Div_1", [pairs[1], classes]);                                         // (b, k) // nc
        string cls = graph.Node("Mod", p + "/Mod", [pairs[1], classes]);                                            // (b, k) % nc
        string selected = graph.Node("GatherElements", p + "/GatherElements_2",
            [topBoxes, graph.Node("Expand", p + "/Expand_2", [graph.Unsqueeze(p + "/Unsqueeze_1", slot, 2), graph.Int64s(1, 1, 4)])],
            OnnxGraph.Attr("axis", 1));                                                                             // (b, k, 4)
        string score = graph.Unsqueeze(p + "/Unsqueeze_2", pairs[0], 2);                                            // (b, k, 1)
        string classColumn = graph.CastFloat(p + "/Cast", graph.Unsqueeze(p + "/Unsqueeze_3", cls, 2));             // (b, k, 1)
        return graph.NamedNode("Concat", p + "/Concat_out", [selected, score, classColumn], OnnxGraph.OutputName,
            OnnxGraph.Attr("axis", 2));                                                                             // (b, k, 6)
    }

    private static global::Onnx.AttributeProto[] TopKAttributes() =>
        [OnnxGraph.Attr("axis", -1), OnnxGraph.Attr("largest", 1), OnnxGraph.Attr("sorted", 1)];

    private long ExportK(bool dynamic, long anchors) => dynamic ? MaxDetections : Math.Min(MaxDetections, anchors);

    private static bool IsUnder(string name, string module) =>
        name == module || name.StartsWith(module + ".", StringComparison.Ordinal);

    // Copies every parameter and buffer of each source branch into the target branch of the same level.
    private static void Copy(IReadOnlyList<Branch> sources, IReadOnlyList<Branch> targets)
    {
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        for (int i = 0; i < sources.Count; i++)
        {
            for (int j = 0; j < sources[i].Layers.Length; j++) Copy(sources[i].Layers[j], targets[i].Layers[j]);
            Copy(sources[i].Output, targets[i].Output);
        }
    }

    private static void Copy(Module source, Module target)
    {
        var to = target.state_dict();
        foreach (var (key, value) in source.state_dict()) to[key].copy_(value);
    }
}
