using Osprey.Models.Blocks;
using Osprey.Models.Building;
using Osprey.Models.Heads;
using static Osprey.Models.Building.LayerContext;

namespace Osprey.Models.Families;

/// <summary>
/// The YOLOv8 family: Conv, C2f, Bottleneck, SPPF, Concat, Upsample (also <c>nn.Upsample</c>) and Detect, each
/// built as Ultralytics' parse_model builds it (and, until YoloV10Family registers it, YOLOv10's <c>v10Detect</c>).
/// </summary>
public sealed class YoloV8Family : IModelFamily
{
    /// <inheritdoc/>
    public void Register(ModuleRegistry registry)
    {
        registry.Register(BuildConv, false, "Conv");
        registry.Register(BuildC2f, true, "C2f");
        registry.Register(BuildBottleneck, false, "Bottleneck");
        registry.Register(BuildSppf, false, "SPPF");
        registry.Register(BuildConcat, false, "Concat");
        registry.Register(BuildUpsample, false, "Upsample", "nn.Upsample");
        registry.Register(BuildDetect, false, "Detect");
        registry.Register(V10Detect.Build, false, V10Detect.YamlName);   // TEMPORARY (v10head): moves to YoloV10Family
    }

    private static LayerBuild BuildConv(LayerContext c)
    {
        // args: [c2, k=1, s=1, p=None, g=1, d=1, act=True]
        long inChannels = c.InputChannel, outChannels = c.ScaleChannels(c.Int(0, 0));
        long kernel = c.Int(1, 1), stride = c.Int(2, 1), groups = c.Int(4, 1), dilation = c.Int(5, 1);
        long? padding = c.IntOrNull(3);
        bool activation = c.Bool(6, true);
        var module = new Conv(inChannels, outChannels, kernel, stride, padding, groups, dilation, activation);
        return new LayerBuild(module, outChannels, FormatArguments(inChannels, outChannels, kernel, stride));
    }

    private static LayerBuild BuildC2f(LayerContext c)
    {
        // args: [c2, shortcut=False, g=1, e=0.5]; Ultralytics inserts n after c2.
        long inChannels = c.InputChannel, outChannels = c.ScaleChannels(c.Int(0, 0));
        bool shortcut = c.Bool(1, false);
        long groups = c.Int(2, 1);
        double expansion = c.Double(3, 0.5);
        var module = new C2f(inChannels, outChannels, c.Repeats, shortcut, groups, expansion);
        return new LayerBuild(module, outChannels, FormatArguments(inChannels, outChannels, c.Repeats, shortcut ? "True" : "False"));
    }

    private static LayerBuild BuildBottleneck(LayerContext c)
    {
        // args: [c2, shortcut=True, g=1, k=(3, 3) (ignored: always 3×3 here), e=0.5]
        long inChannels = c.InputChannel, outChannels = c.ScaleChannels(c.Int(0, 0));
        bool shortcut = c.Bool(1, true);
        long groups = c.Int(2, 1);
        double expansion = c.Double(4, 0.5);
        var module = new Bottleneck(inChannels, outChannels, shortcut, groups, 3, 3, expansion);
        return new LayerBuild(module, outChannels, FormatArguments(inChannels, outChannels, shortcut ? "True" : "False"));
    }

    private static LayerBuild BuildSppf(LayerContext c)
    {
        // args: [c2, k=5]
        long inChannels = c.InputChannel, outChannels = c.ScaleChannels(c.Int(0, 0));
        long kernel = c.Int(1, 5);
        return new LayerBuild(new SPPF(inChannels, outChannels, kernel), outChannels, FormatArguments(inChannels, outChannels, kernel));
    }

    private static LayerBuild BuildConcat(LayerContext c)
    {
        long dimension = c.Int(0, 1);
        if (dimension != 1) throw c.Error("only channel concatenation (dimension 1) is supported.");
        return new LayerBuild(new Concat(dimension), c.InputChannels.Sum(), FormatArguments(dimension));
    }

    private static LayerBuild BuildUpsample(LayerContext c)
    {
        // args: [size=None, scale_factor=2, mode="nearest"]
        if (c.HasArg(0)) throw c.Error("a fixed output size is not supported; use scale_factor.");
        string mode = c.String(2) ?? "nearest";
        if (mode != "nearest") throw c.Error($"only nearest upsampling is supported, got '{mode}'.");
        double scale = c.Double(1, 2);
        return new LayerBuild(new Upsample(scale), c.InputChannel, $"[None, {FormatArgument(scale)}, 'nearest']");
    }

    private static LayerBuild BuildDetect(LayerContext c)
    {
        // args: [nc]; Ultralytics appends the list of input channels.
        int nc = checked((int)c.Int(0, c.Nc));
        var detect = new Detect(nc, c.InputChannels.ToArray());
        return new LayerBuild(detect, detect.OutputsPerAnchor, $"[{nc}, [{string.Join(", ", c.InputChannels)}]]");
    }
}
