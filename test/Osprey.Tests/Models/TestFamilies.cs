using Osprey.Models;
using Osprey.Models.Blocks;
using Osprey.Models.Building;
using Osprey.Models.Heads;
using Osprey.Onnx;
using TorchSharp.Modules;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace Osprey.Tests.Models;

/// <summary>
/// A block defined outside the library, in one class: a 3×3 stride-2 Conv2d with bias, then ReLU. Its forward computes
/// under the model's cast policy (<see cref="ICastPolicyAware"/>) and it writes its own ONNX nodes (<see cref="IOnnxBlock"/>).
/// </summary>
internal sealed class ToyDown : Module<Tensor, Tensor>, ICastPolicyAware, IOnnxBlock
{
    private readonly Conv2d conv;

    public ToyDown(long inChannels, long outChannels) : base(nameof(ToyDown))
    {
        conv = Conv2d(inChannels, outChannels, 3, stride: 2, padding: 1);
        RegisterComponents();
    }

    public CastPolicy Policy { get; set; } = CastPolicy.Float32;

    public override Tensor forward(Tensor x) => functional.relu(Policy.Conv(conv, x)); // (b, c_in, h, w) → (b, c_out, h/2, w/2)

    public string Emit(OnnxGraph graph, string prefix, IReadOnlyList<string> inputs)
    {
        string scope = OnnxGraph.Scope(prefix);
        return graph.Node("Relu", scope + "/Relu", [graph.Conv(scope + "/conv/Conv", inputs[0], prefix + ".conv", conv)]);
    }
}

/// <summary>A family outside the library registering <see cref="ToyDown"/> as <c>ToyDown: [c2]</c>.</summary>
internal sealed class ToyFamily : IModelFamily
{
    public void Register(ModuleRegistry registry) => registry.Register(c =>
    {
        long outChannels = c.ScaleChannels(c.Int(0, 0));
        return new LayerBuild(new ToyDown(c.InputChannel, outChannels), outChannels,
            LayerContext.FormatArguments(c.InputChannel, outChannels));
    }, false, "ToyDown");

    /// <summary>Five ToyDown layers (3 → 8 → 16 → 16 → 32 → 32 channels, strides 2 … 32) and a Detect head on the last three.</summary>
    public const string Yaml = """
        nc: 3
        backbone:
          - [-1, 1, ToyDown, [8]]    # 0 /2
          - [-1, 1, ToyDown, [16]]   # 1 /4
          - [-1, 1, ToyDown, [16]]   # 2 /8
          - [-1, 1, ToyDown, [32]]   # 3 /16
          - [-1, 1, ToyDown, [32]]   # 4 /32
        head:
          - [[2, 3, 4], 1, Detect, [nc]]
        """;
}

/// <summary>
/// YOLO11's detect head (Ultralytics' <c>Detect</c> with <c>legacy=False</c>) as one override of YOLOv8's: each class
/// branch is Sequential(DWConv(x, x, 3), Conv(x, c3, 1)), Sequential(DWConv(c3, c3, 3), Conv(c3, c3, 1)), then the
/// 1×1 output; DWConv(c1, c2, k) is Conv(c1, c2, k, groups = gcd(c1, c2)).
/// </summary>
internal sealed class DepthwiseDetect : Detect
{
    public DepthwiseDetect(int nc, IReadOnlyList<long> inputChannels) : base(nameof(Detect), nc, inputChannels, DefaultRegMax)
    {
    }

    protected override Module<Tensor, Tensor>[] ClassLayers(long inputChannels, long hiddenChannels) => new Module<Tensor, Tensor>[]
    {
        Sequential(new Conv(inputChannels, inputChannels, 3, groups: inputChannels), new Conv(inputChannels, hiddenChannels, 1)),
        Sequential(new Conv(hiddenChannels, hiddenChannels, 3, groups: hiddenChannels), new Conv(hiddenChannels, hiddenChannels, 1)),
    };
}

/// <summary>A family that registers <see cref="DepthwiseDetect"/> under <c>Detect</c> (replacing YOLOv8's when added after it).</summary>
internal sealed class DepthwiseDetectFamily : IModelFamily
{
    public void Register(ModuleRegistry registry) => registry.Register(c =>
    {
        int nc = checked((int)c.Int(0, c.Nc));
        var head = new DepthwiseDetect(nc, c.InputChannels.ToArray());
        return new LayerBuild(head, head.OutputsPerAnchor, $"[{nc}, [{string.Join(", ", c.InputChannels)}]]");
    }, false, "Detect");
}
