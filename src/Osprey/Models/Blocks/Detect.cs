using TorchSharp.Modules;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace Osprey.Models.Blocks;

/// <summary>
/// Ultralytics YOLOv8 <c>Detect</c> head: per level a box branch (cv2 → 4·reg_max DFL logits) and a class branch
/// (cv3 → nc logits). <see cref="Module{T,TResult}.forward"/> returns the raw maps, one per level, each
/// (b, 4·reg_max + nc, h, w); <see cref="Decode"/> turns them into Ultralytics' inference layout
/// (b, 4 + nc, A): centre-x, centre-y, w, h in input pixels, then sigmoid class scores.
/// </summary>
public sealed class Detect : Module<Tensor[], Tensor[]>
{
    /// <summary>DFL bins per box side.</summary>
    public const int DefaultRegMax = 16;

    private readonly ModuleList<Sequential> cv2;
    private readonly ModuleList<Sequential> cv3;
    private readonly DFL dfl;
    private readonly List<Conv2d> boxOutputs = new();
    private readonly List<Conv2d> classOutputs = new();
    private readonly List<Conv[]> boxHiddenLayers = new();
    private readonly List<Conv[]> classHiddenLayers = new();
    private readonly AnchorCache anchorCache = new();
    private float[] strides;

    /// <param name="nc">Number of classes.</param>
    /// <param name="inputChannels">Channels of each input level (P3, P4, P5).</param>
    /// <param name="regMax">DFL bins per side.</param>
    public Detect(int nc, IReadOnlyList<long> inputChannels, int regMax = DefaultRegMax) : base(nameof(Detect))
    {
        Nc = nc;
        RegMax = regMax;
        Levels = inputChannels.Count;
        strides = Levels == 3 ? new[] { 8f, 16f, 32f } : new float[Levels];
        long boxHidden = Math.Max(Math.Max(16, inputChannels[0] / 4), regMax * 4);   // c2
        long classHidden = Math.Max(inputChannels[0], Math.Min(nc, 100));            // c3
        cv2 = new ModuleList<Sequential>();
        cv3 = new ModuleList<Sequential>();
        foreach (long channels in inputChannels)
        {
            var boxOut = Conv2d(boxHidden, 4 * regMax, 1);
            var classOut = Conv2d(classHidden, nc, 1);
            boxOutputs.Add(boxOut);
            classOutputs.Add(classOut);
            var box = new[] { new Conv(channels, boxHidden, 3), new Conv(boxHidden, boxHidden, 3) };
            var cls = new[] { new Conv(channels, classHidden, 3), new Conv(classHidden, classHidden, 3) };
            boxHiddenLayers.Add(box);
            classHiddenLayers.Add(cls);
            cv2.Add(Sequential(box[0], box[1], boxOut));
            cv3.Add(Sequential(cls[0], cls[1], classOut));
        }
        dfl = new DFL(regMax);
        RegisterComponents();
    }

    /// <summary>Number of classes.</summary>
    public int Nc { get; }

    /// <summary>DFL bins per side.</summary>
    public int RegMax { get; }

    /// <summary>Number of detection levels (3).</summary>
    public int Levels { get; }

    /// <summary>Outputs per anchor: nc + 4·reg_max.</summary>
    public int OutputsPerAnchor => Nc + 4 * RegMax;

    /// <summary>
    /// In eval mode, the function that turns class logits into scores instead of libtorch's sigmoid (an imported ONNX
    /// model uses ONNX Runtime's, <see cref="Onnx.MlasLogistic"/>); null = sigmoid.
    /// </summary>
    internal Func<Tensor, Tensor>? ScoreFunction { get; set; }

    /// <summary>The DFL integral.</summary>
    internal DFL Dfl => dfl;

    /// <summary>How the final 1×1 convolutions compute (their Conv blocks carry their own).</summary>
    internal CastPolicy Policy { get; set; } = CastPolicy.Float32;

    /// <summary>Stride of each level in input pixels (8, 16, 32 for P3–P5).</summary>
    public IReadOnlyList<float> Strides => strides;

    /// <summary>Sets the strides (the model measures them with a dry run) and invalidates cached anchors.</summary>
    public void SetStrides(IReadOnlyList<float> levelStrides)
    {
        if (levelStrides.Count != Levels)
            throw new ArgumentException($"Detect has {Levels} levels but {levelStrides.Count} strides were given.");
        strides = levelStrides.ToArray();
        anchorCache.Clear();
    }

    /// <summary>
    /// Ultralytics' bias prior: box logits 1.0; class logits log(5 / nc / (640 / stride)²) (≈ 5 objects per image).
    /// </summary>
    public void InitializeBiases()
    {
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        for (int i = 0; i < Levels; i++)
        {
            boxOutputs[i].bias!.fill_(1.0);
            double prior = Math.Log(5.0 / Nc / Math.Pow(640.0 / strides[i], 2));
            classOutputs[i].bias!.fill_(prior);
        }
    }

    /// <summary>Raw per-level maps, each (b, 4·reg_max + nc, h, w) = cat(cv2, cv3) along channels.</summary>
    public override Tensor[] forward(Tensor[] features)
    {
        var maps = new Tensor[Levels];
        for (int i = 0; i < Levels; i++)
            maps[i] = Policy.IsIdentity
                ? cat(new[] { cv2[i].call(features[i]), cv3[i].call(features[i]) }, 1)       // (b, no, h_i, w_i)
                : cat(new[] { Branch(boxHiddenLayers[i], boxOutputs[i], features[i]),
                              Branch(classHiddenLayers[i], classOutputs[i], features[i]) }, 1);
        return maps;
    }

    // cv2[i] / cv3[i] layer by layer, so that the final plain Conv2d computes under the cast policy too.
    private Tensor Branch(Conv[] hidden, Conv2d output, Tensor x) =>
        Policy.Conv(output, hidden[1].call(hidden[0].call(x)));

    /// <summary>Decodes raw maps into (b, 4 + nc, A): xywh boxes in input pixels, then sigmoid class scores.</summary>
    public Tensor Decode(IReadOnlyList<Tensor> maps)
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

    /// <inheritdoc/>
    protected override void Dispose(bool disposing)
    {
        if (disposing) anchorCache.Clear();
        base.Dispose(disposing);
    }

    /// <summary>Anchors for the last seen map shapes/device/dtype (kept out of the module's buffers).</summary>
    private sealed class AnchorCache
    {
        private string key = "";
        private Tensor? points;   // (1, 2, A)
        private Tensor? strideRow; // (1, A)

        public (Tensor Points, Tensor Strides) Get(IReadOnlyList<Tensor> maps, IReadOnlyList<float> strides)
        {
            string wanted = string.Join(";", maps.Select(m => $"{m.shape[2]}x{m.shape[3]}")) +
                            $"|{maps[0].device}|{maps[0].dtype}|{string.Join(",", strides)}";
            if (wanted != key || points is null || strideRow is null)
            {
                Clear();
                using var scope = NewDisposeScope();
                var (anchorPoints, strideTensor) = Anchors.Make(maps, strides);      // (A, 2), (A, 1)
                points = anchorPoints.transpose(0, 1).unsqueeze(0).contiguous().DetachFromDisposeScope();
                strideRow = strideTensor.transpose(0, 1).contiguous().DetachFromDisposeScope();
                key = wanted;
            }
            return (points, strideRow);
        }

        public void Clear()
        {
            points?.Dispose();
            strideRow?.Dispose();
            points = null;
            strideRow = null;
            key = "";
        }
    }
}
