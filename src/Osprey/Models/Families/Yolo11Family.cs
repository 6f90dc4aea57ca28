using Osprey.Models.Blocks;
using Osprey.Models.Building;
using Osprey.Models.Heads;
using static Osprey.Models.Building.LayerContext;

namespace Osprey.Models.Families;

/// <summary>
/// The YOLO11 family (<c>yolo11.yaml</c>, scales n/s/m/l/x): C3k2, C2PSA, C3 and DWConv, built as Ultralytics'
/// parse_model builds them, and its <c>Detect</c> rule: the head is built with <c>legacy=False</c>
/// (<see cref="Yolo11Detect"/>, depthwise-separable class branch) when a row before it is a C3k2 (or C2fCIB, as
/// parse_model sets it for YOLOv10's blocks too), else as YOLOv8's. For scales m, l and x parse_model forces every
/// C3k2's <c>c3k</c> argument to True.
/// </summary>
public sealed class Yolo11Family : IModelFamily
{
    /// <summary>The modules whose rows make parse_model build the Detect head with <c>legacy=False</c>.</summary>
    public static IReadOnlySet<string> NonLegacyModules { get; } = new HashSet<string>(StringComparer.Ordinal) { "C3k2", "C2fCIB", "A2C2f" };

    /// <inheritdoc/>
    public void Register(ModuleRegistry registry)
    {
        registry.Register(BuildC3k2, true, "C3k2");
        registry.Register(BuildC2Psa, true, "C2PSA");
        registry.Register(BuildC3, true, "C3");
        registry.Register(BuildDwConv, false, "DWConv");
        registry.Register(BuildDetect, false, "Detect");
    }

    /// <summary>parse_model's <c>legacy</c> flag for the Detect row of <paramref name="c"/>: false once a row before it is
    /// one of <see cref="NonLegacyModules"/>.</summary>
    public static bool IsLegacyHead(LayerContext c) =>
        !c.Config.Layers.Take(c.Row.Index).Any(row => NonLegacyModules.Contains(row.Module));

    private static LayerBuild BuildC3k2(LayerContext c)
    {
        // args: [c2, c3k=False, e=0.5, attn=False, g=1, shortcut=True]; Ultralytics inserts n after c2 and, for scales
        // m/l/x, sets c3k (args[3] after the insertion) to True.
        long inChannels = c.InputChannel, outChannels = c.ScaleChannels(c.Int(0, 0));
        bool forced = c.Config.Scale is "m" or "l" or "x";
        bool c3k = forced || c.Bool(1, false);
        double expansion = c.Double(2, 0.5);
        if (c.Bool(3, false)) throw c.Error("attn=True (YOLO26's Bottleneck + PSABlock) is not supported.");
        long groups = c.Int(4, 1);
        bool shortcut = c.Bool(5, true);
        var module = new C3k2(inChannels, outChannels, c.Repeats, c3k, expansion, groups, shortcut);
        var printed = new List<object> { inChannels, outChannels, c.Repeats };
        if (c.ArgCount > 1 || forced) printed.Add(Python(c3k));
        printed.AddRange(RawArguments(c, 2));
        return new LayerBuild(module, outChannels, FormatArguments(printed.ToArray()));
    }

    private static LayerBuild BuildC2Psa(LayerContext c)
    {
        // args: [c2, e=0.5]; Ultralytics inserts n after c2; C2PSA keeps its channels (c1 == c2).
        long inChannels = c.InputChannel, outChannels = c.ScaleChannels(c.Int(0, 0));
        if (outChannels != inChannels) throw c.Error($"C2PSA keeps its channels: input {inChannels}, output {outChannels}.");
        var module = new C2PSA(inChannels, c.Repeats, c.Double(1, 0.5));
        object[] printed = new object[] { inChannels, outChannels, c.Repeats }.Concat(RawArguments(c, 1)).ToArray();
        return new LayerBuild(module, outChannels, FormatArguments(printed));
    }

    private static LayerBuild BuildC3(LayerContext c)
    {
        // args: [c2, shortcut=True, g=1, e=0.5]; Ultralytics inserts n after c2.
        long inChannels = c.InputChannel, outChannels = c.ScaleChannels(c.Int(0, 0));
        var module = new C3(inChannels, outChannels, c.Repeats, c.Bool(1, true), c.Int(2, 1), c.Double(3, 0.5));
        object[] printed = new object[] { inChannels, outChannels, c.Repeats }.Concat(RawArguments(c, 1)).ToArray();
        return new LayerBuild(module, outChannels, FormatArguments(printed));
    }

    private static LayerBuild BuildDwConv(LayerContext c)
    {
        // args: [c2, k=1, s=1, d=1, act=True]
        long inChannels = c.InputChannel, outChannels = c.ScaleChannels(c.Int(0, 0));
        long kernel = c.Int(1, 1), stride = c.Int(2, 1);
        var module = DWConv.Create(inChannels, outChannels, kernel, stride, c.Int(3, 1), c.Bool(4, true));
        object[] printed = new object[] { inChannels, outChannels }.Concat(RawArguments(c, 1)).ToArray();
        return new LayerBuild(module, outChannels, FormatArguments(printed));
    }

    private static LayerBuild BuildDetect(LayerContext c)
    {
        if (IsLegacyHead(c)) return YoloV8Family.BuildDetect(c);
        // args: [nc]; Ultralytics appends the list of input channels.
        int nc = checked((int)c.Int(0, c.Nc));
        var head = new Yolo11Detect(nc, c.InputChannels.ToArray());
        return new LayerBuild(head, head.OutputsPerAnchor, $"[{nc}, [{string.Join(", ", c.InputChannels)}]]");
    }

    /// <summary>The YAML arguments from <paramref name="start"/> on as Ultralytics prints them (booleans as True/False,
    /// numbers as written).</summary>
    internal static IEnumerable<object> RawArguments(LayerContext c, int start)
    {
        for (int i = start; i < c.ArgCount; i++)
        {
            string text = c.Row.Args[i] as string ?? throw c.Error($"arg {i} must be a scalar.");
            yield return text.ToLowerInvariant() switch { "true" => "True", "false" => "False", "null" or "~" => "None", _ => text };
        }
    }

    private static string Python(bool value) => value ? "True" : "False";
}
