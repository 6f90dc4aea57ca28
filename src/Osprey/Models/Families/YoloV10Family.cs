using Osprey.Models.Blocks;
using Osprey.Models.Building;
using Osprey.Models.Heads;
using static Osprey.Models.Building.LayerContext;

namespace Osprey.Models.Families;

/// <summary>
/// The YOLOv10 family (<c>yolov10n.yaml</c> … <c>yolov10x.yaml</c>, one scale each): SCDown, PSA and C2fCIB, built as
/// Ultralytics' parse_model builds them, and the NMS-free head <c>v10Detect</c> (<see cref="V10Detect"/>).
/// </summary>
public sealed class YoloV10Family : IModelFamily
{
    /// <inheritdoc/>
    public void Register(ModuleRegistry registry)
    {
        registry.Register(BuildScDown, false, "SCDown");
        registry.Register(BuildPsa, false, "PSA");
        registry.Register(BuildC2fCib, true, "C2fCIB");
        registry.Register(V10Detect.Build, false, V10Detect.YamlName);
    }

    private static LayerBuild BuildScDown(LayerContext c)
    {
        // args: [c2, k, s]
        long inChannels = c.InputChannel, outChannels = c.ScaleChannels(c.Int(0, 0));
        if (!c.HasArg(1) || !c.HasArg(2)) throw c.Error("SCDown needs [c2, k, s].");
        long kernel = c.Int(1, 0), stride = c.Int(2, 0);
        return new LayerBuild(new SCDown(inChannels, outChannels, kernel, stride), outChannels,
            FormatArguments(inChannels, outChannels, kernel, stride));
    }

    private static LayerBuild BuildPsa(LayerContext c)
    {
        // args: [c2, e=0.5]; PSA keeps its channels (c1 == c2).
        long inChannels = c.InputChannel, outChannels = c.ScaleChannels(c.Int(0, 0));
        if (outChannels != inChannels) throw c.Error($"PSA keeps its channels: input {inChannels}, output {outChannels}.");
        object[] printed = new object[] { inChannels, outChannels }.Concat(Yolo11Family.RawArguments(c, 1)).ToArray();
        return new LayerBuild(new PSA(inChannels, c.Double(1, 0.5)), outChannels, FormatArguments(printed));
    }

    private static LayerBuild BuildC2fCib(LayerContext c)
    {
        // args: [c2, shortcut=False, lk=False, g=1, e=0.5]; Ultralytics inserts n after c2 (g only reaches the C2f
        // bottlenecks that C2fCIB replaces).
        long inChannels = c.InputChannel, outChannels = c.ScaleChannels(c.Int(0, 0));
        var module = new C2fCIB(inChannels, outChannels, c.Repeats, c.Bool(1, false), c.Bool(2, false), c.Double(4, 0.5));
        object[] printed = new object[] { inChannels, outChannels, c.Repeats }.Concat(Yolo11Family.RawArguments(c, 1)).ToArray();
        return new LayerBuild(module, outChannels, FormatArguments(printed));
    }
}
