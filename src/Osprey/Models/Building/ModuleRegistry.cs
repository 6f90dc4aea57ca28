using System.Collections.Concurrent;
using static TorchSharp.torch.nn;

namespace Osprey.Models.Building;

/// <summary>What a layer factory returns: the module, its output channels and the resolved args for summaries.</summary>
/// <param name="Module">The layer.</param>
/// <param name="OutChannels">Its output channels (what later layers see as input).</param>
/// <param name="Arguments">Resolved constructor args, for the layer table (e.g. <c>[3, 16, 3, 2]</c>).</param>
public sealed record LayerBuild(Module Module, long OutChannels, string Arguments);

/// <summary>Builds one YAML layer.</summary>
public delegate LayerBuild LayerFactory(LayerContext context);

/// <summary>
/// Module name → factory. YOLOv8's blocks are registered by default; later families (YOLO11, YOLOv10) add theirs
/// with <see cref="Register"/>. A factory with <c>consumesRepeats</c> gets the scaled repeats as an argument
/// (C2f); other modules are stacked in a Sequential when repeats &gt; 1, like Ultralytics.
/// </summary>
public static class ModuleRegistry
{
    private static readonly ConcurrentDictionary<string, (LayerFactory Factory, bool ConsumesRepeats)> Factories =
        new(StringComparer.Ordinal);

    static ModuleRegistry() => YoloV8Modules.RegisterAll();

    /// <summary>Registers (or replaces) a factory under one or more names (e.g. <c>Upsample</c>, <c>nn.Upsample</c>).</summary>
    public static void Register(LayerFactory factory, bool consumesRepeats, params string[] names)
    {
        foreach (var name in names) Factories[name] = (factory, consumesRepeats);
    }

    /// <summary>Looks up a factory by YAML module name.</summary>
    public static bool TryGet(string name, out LayerFactory factory, out bool consumesRepeats)
    {
        if (Factories.TryGetValue(name, out var entry))
        {
            (factory, consumesRepeats) = entry;
            return true;
        }
        factory = null!;
        consumesRepeats = false;
        return false;
    }

    /// <summary>All registered names.</summary>
    public static IReadOnlyCollection<string> Names => Factories.Keys.OrderBy(n => n, StringComparer.Ordinal).ToArray();
}
