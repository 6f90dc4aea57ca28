using Osprey.Models.Blocks;
using Osprey.Models.Building;
using Osprey.Models.Heads;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace Osprey.Models;

/// <summary>
/// A YOLO detection model built from an Ultralytics YAML. The layers live in the field <c>model</c> so state-dict
/// keys match Ultralytics' (<c>model.0.conv.weight</c>, <c>model.22.dfl.conv.weight</c>, …).
/// <para><see cref="forward"/>: training mode → the head's raw maps from <see cref="ForwardFeatures"/>;
/// eval mode → a single-element array holding <see cref="Predict"/>'s tensor ((b, 4 + nc, A) for the NMS heads).</para>
/// </summary>
public sealed class DetectionModel : Module<Tensor, Tensor[]>
{
    private const int StrideProbeSize = 64;

    private readonly ModuleList<Module> model;
    private readonly BuiltLayer[] layers;
    private readonly bool[] keepOutput;

    /// <summary>Builds the model described by <paramref name="config"/> with the known families' blocks
    /// (<see cref="ModuleRegistry.Default"/>), measures strides, sets the head's biases.</summary>
    public DetectionModel(ModelConfig config) : this(config, ModuleRegistry.Default)
    {
    }

    /// <summary>Builds the model described by <paramref name="config"/> with the blocks of <paramref name="registry"/>,
    /// measures strides, sets the head's biases.</summary>
    public DetectionModel(ModelConfig config, ModuleRegistry registry) : base(nameof(DetectionModel))
    {
        Config = config;
        Registry = registry;
        layers = ModelBuilder.Build(config, registry).ToArray();
        if (layers.Length == 0 || layers[^1].Module is not DetectionHead)
            throw new InvalidDataException($"{config.Source}: the last layer must be a detection head (Detect).");
        keepOutput = new bool[layers.Length];
        foreach (var layer in layers)
            foreach (int from in layer.From.Where(f => f != -1))
                keepOutput[from < 0 ? layer.Index + from : from] = true;
        model = new ModuleList<Module>(layers.Select(l => l.Module).ToArray());
        RegisterComponents();
        Head.SetStrides(MeasureStrides());
        Head.InitializeBiases();
    }

    /// <summary>Loads a YAML by name or path (see <see cref="ModelConfig.Load"/>) and builds it (with
    /// <paramref name="registry"/>'s blocks; null = <see cref="ModuleRegistry.Default"/>).</summary>
    public static DetectionModel FromYaml(string nameOrPath, int? nc = null, ModuleRegistry? registry = null) =>
        new(ModelConfig.Load(nameOrPath, nc), registry ?? ModuleRegistry.Default);

    /// <summary>The parsed YAML this model was built from.</summary>
    public ModelConfig Config { get; }

    /// <summary>The registry the model was built with (pass it on to build another copy of the model).</summary>
    public ModuleRegistry Registry { get; }

    /// <summary>The detection head (nc, reg_max, strides, decoding).</summary>
    public DetectionHead Head => (DetectionHead)model[layers.Length - 1];

    /// <summary>Number of classes.</summary>
    public int Nc => Head.Nc;

    /// <summary>Class names: the dataset's for trained weights (<see cref="Trained"/>), else the YAML's.</summary>
    public IReadOnlyList<string> Names => Trained?.Names is { } names && names.Count == Nc ? names : Config.Names;

    /// <summary>What the weights were trained on, as Ultralytics' checkpoints keep it (<c>train_args["data"]</c>,
    /// <c>model.names</c>): set by the trainer on the model it saves, read back with the weights
    /// (<see cref="ModelWeights"/>) and from an export's description; null for a new model.</summary>
    public TrainedOn? Trained { get; set; }

    /// <summary>Stride of each detection level in pixels.</summary>
    public IReadOnlyList<float> Strides => Head.Strides;

    /// <summary>DFL bins per side.</summary>
    public int RegMax => Head.RegMax;

    /// <summary>Scale letter (n, s, m, l, x) or null.</summary>
    public string? Scale => Config.Scale;

    /// <summary>The YAML text.</summary>
    public string Yaml => Config.Text;

    /// <summary>Number of layers (23 for YOLOv8).</summary>
    public int LayerCount => layers.Length;

    /// <summary>The built layers in order (module, <c>from</c> indices, YAML name, arguments).</summary>
    public IReadOnlyList<BuiltLayer> Layers => layers;

    /// <summary>Every parameter's element count, including DFL's fixed 16 (Ultralytics' sum(p.numel())).</summary>
    public long ParameterCount => parameters().Sum(p => p.numel());

    /// <summary>Element count of parameters that require gradients.</summary>
    public long GradientCount => parameters().Where(p => p.requires_grad).Sum(p => p.numel());

    /// <summary>How the forward computes (<see cref="CastPolicy.Float32"/> unless <see cref="UseCastPolicy"/> changed it).</summary>
    public CastPolicy Policy { get; private set; } = CastPolicy.Float32;

    /// <summary>
    /// Makes every convolution compute under <paramref name="policy"/> (parameters, gradients and BatchNorm
    /// statistics stay fp32): sets the policy of every module that is <see cref="ICastPolicyAware"/>. The raw maps
    /// <see cref="ForwardFeatures"/> returns are fp32 and contiguous whatever the policy. <see cref="CastPolicy.Float32"/>
    /// restores the plain forward.
    /// </summary>
    public DetectionModel UseCastPolicy(CastPolicy policy)
    {
        Policy = policy;
        foreach (var module in modules().OfType<ICastPolicyAware>()) module.Policy = policy;
        return this;
    }

    /// <summary>True after <see cref="Fuse"/>.</summary>
    public bool IsFused { get; private set; }

    /// <summary>
    /// The head's raw maps (what its loss takes), each (b, 4·reg_max + nc, h, w): one per level; an end-to-end head
    /// (<see cref="V10Detect"/>) gives its one-to-many maps, then its one-to-one maps (only those once fused).
    /// Independent of train/eval mode.
    /// </summary>
    public Tensor[] ForwardFeatures(Tensor images) => Forward(images, null);

    /// <summary>
    /// <see cref="ForwardFeatures"/> and the head's inputs (the layers that feed it, each (b, c, h, w) in the compute
    /// dtype and layout of the cast policy): what distillation compares.
    /// </summary>
    public (Tensor[] Maps, Tensor[] HeadInputs) ForwardWithHeadInputs(Tensor images)
    {
        var inputs = new List<Tensor>();
        var maps = Forward(images, inputs);
        return (maps, inputs.ToArray());
    }

    // The forward; headInputs, when given, receives the head's inputs (moved out of this scope).
    Tensor[] Forward(Tensor images, List<Tensor>? headInputs)
    {
        using var scope = NewDisposeScope();
        var outputs = new Tensor?[layers.Length];
        Tensor current = images; // (b, ch, H, W)
        for (int i = 0; i < layers.Length - 1; i++)
        {
            current = model[i] switch
            {
                Module<Tensor, Tensor> single when layers[i].From.Length == 1 => single.call(Input(outputs, current, i, layers[i].From[0])),
                Module<Tensor[], Tensor> multi => multi.call(layers[i].From.Select(f => Input(outputs, current, i, f)).ToArray()),
                var other => throw new InvalidOperationException($"Layer {i} ({other.GetType().Name}) cannot take {layers[i].From.Length} inputs."),
            };
            if (keepOutput[i]) outputs[i] = current;
        }
        int last = layers.Length - 1;
        var features = layers[last].From.Select(f => Input(outputs, current, last, f)).ToArray();
        var maps = Head.call(features).Select(Policy.Output).ToArray(); // nl × (b, no, H/s, W/s), fp32
        foreach (var map in maps) map.MoveToOuterDisposeScope();
        if (headInputs is not null) headInputs.AddRange(features.Select(f => f.MoveToOuterDisposeScope()));
        return maps;
    }

    /// <summary>
    /// The head's inference output (<see cref="DetectionHead.Decode"/>): (b, 4 + nc, A) xywh in input pixels, then class
    /// scores, for the NMS heads; (b, k, 6) detections for an end-to-end head. Call in eval mode.
    /// </summary>
    public Tensor Predict(Tensor images)
    {
        using var scope = NewDisposeScope();
        return Head.Decode(ForwardFeatures(images)).MoveToOuterDisposeScope();
    }

    /// <inheritdoc/>
    public override Tensor[] forward(Tensor images) => training ? ForwardFeatures(images) : new[] { Predict(images) };

    /// <summary>
    /// Folds every Conv's batch norm into its convolution and re-parameterises every <see cref="RepVGGDW"/> (its 3×3
    /// branch into the 7×7), as Ultralytics' fuse does (inference only). Eval outputs are unchanged within float rounding.
    /// </summary>
    public DetectionModel Fuse()
    {
        foreach (var conv in modules().OfType<Conv>()) conv.Fuse();
        foreach (var block in modules().OfType<RepVGGDW>().ToList()) block.Fuse();
        Head.OnFused();
        IsFused = true;
        return this;
    }

    /// <summary>
    /// GFLOPs at <paramref name="imageSize"/>² as Ultralytics reports them for the fused model (thop): 2 × the
    /// multiply-accumulates of every Conv2d (output elements × in/groups × kh × kw; biases, BN, pools ignored),
    /// measured with forward hooks at max(stride, 32) px and scaled by (imageSize / that)².
    /// </summary>
    public double Gflops(int imageSize = 640)
    {
        int probe = Math.Max((int)Strides.Max(), 32);
        long macs = 0;
        var convs = modules().OfType<Conv2d>().ToList();
        var handles = convs.Select(conv => conv.register_forward_hook((module, input, output) =>
        {
            var weight = ((Conv2d)module).weight!; // (c_out, c_in/g, kh, kw)
            macs += output.numel() * weight.shape[1] * weight.shape[2] * weight.shape[3];
            return output;
        })).ToList();
        bool wasTraining = training;
        try
        {
            eval();
            using var scope = NewDisposeScope();
            using var noGrad = no_grad();
            var parameter = parameters().First();
            Predict(zeros(1, Config.InputChannels, probe, probe, dtype: parameter.dtype, device: parameter.device));
        }
        finally
        {
            foreach (var handle in handles) handle.remove();
            train(wasTraining);
        }
        return 2.0 * macs / 1e9 * imageSize / probe * imageSize / probe;
    }

    /// <summary>The layer table (index, from, repeats, params, module, args) as data.</summary>
    public IReadOnlyList<LayerSummary> Summary() => layers.Select(l => new LayerSummary(
        l.Index,
        l.From.Length == 1 ? l.From[0].ToString(System.Globalization.CultureInfo.InvariantCulture) : $"[{string.Join(", ", l.From)}]",
        l.Repeats,
        l.Module.parameters().Sum(p => p.numel()),
        l.ModuleName,
        l.Arguments)).ToArray();

    private static Tensor Input(Tensor?[] outputs, Tensor current, int layer, int from)
    {
        if (from == -1) return current;
        int index = from < 0 ? layer + from : from;
        return outputs[index] ?? throw new InvalidOperationException($"Output of layer {index} was not kept.");
    }

    private float[] MeasureStrides()
    {
        bool wasTraining = training;
        try
        {
            eval(); // keep BN running stats untouched
            using var scope = NewDisposeScope();
            using var noGrad = no_grad();
            var maps = ForwardFeatures(zeros(1, Config.InputChannels, StrideProbeSize, StrideProbeSize));
            return maps.Take(Head.Levels).Select(m => (float)StrideProbeSize / m.shape[2]).ToArray();
        }
        finally
        {
            train(wasTraining);
        }
    }
}
