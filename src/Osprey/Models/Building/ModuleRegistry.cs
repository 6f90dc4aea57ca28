using Osprey.Models.Families;
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
/// YAML module name → factory, filled by model families (<see cref="IModelFamily"/>) when it is built and fixed after.
/// A factory with <c>consumesRepeats</c> gets the scaled repeats as an argument (C2f); other modules are stacked in a
/// Sequential when repeats &gt; 1, like Ultralytics. A later family's registration of a name replaces an earlier one's
/// (a family may extend a name such as <c>Detect</c>).
/// </summary>
public sealed class ModuleRegistry
{
    private readonly Dictionary<string, (LayerFactory Factory, bool ConsumesRepeats)> factories = new(StringComparer.Ordinal);
    private readonly IModelFamily[] families;
    private readonly bool built;

    /// <summary>The families Osprey knows, in registration order. A new family adds one line here.</summary>
    public static IReadOnlyList<IModelFamily> KnownFamilies { get; } = new IModelFamily[]
    {
        new YoloV8Family(),
        new Yolo11Family(),
        new YoloV10Family(),
    };

    /// <summary>The registry of <see cref="KnownFamilies"/>: what models are built with unless given another.</summary>
    public static ModuleRegistry Default { get; } = new(KnownFamilies);

    /// <summary>A registry holding what <paramref name="families"/> register, in order.</summary>
    public ModuleRegistry(IEnumerable<IModelFamily> families)
    {
        this.families = families.ToArray();
        foreach (var family in this.families) family.Register(this);
        built = true;
    }

    /// <summary>The families this registry was built from.</summary>
    public IReadOnlyList<IModelFamily> Families => families;

    /// <summary>A new registry with this one's families followed by <paramref name="more"/> (this one is unchanged).</summary>
    public ModuleRegistry With(params IModelFamily[] more) => new(families.Concat(more));

    /// <summary>Registers (or replaces) a factory under one or more names (e.g. <c>Upsample</c>, <c>nn.Upsample</c>);
    /// only while the registry is being built (from <see cref="IModelFamily.Register"/>).</summary>
    /// <exception cref="InvalidOperationException">The registry is already built.</exception>
    public void Register(LayerFactory factory, bool consumesRepeats, params string[] names)
    {
        if (built)
            throw new InvalidOperationException("A module registry is fixed once built; add a family with With(...) instead.");
        foreach (var name in names) factories[name] = (factory, consumesRepeats);
    }

    /// <summary>Looks up a factory by YAML module name.</summary>
    public bool TryGet(string name, out LayerFactory factory, out bool consumesRepeats)
    {
        if (factories.TryGetValue(name, out var entry))
        {
            (factory, consumesRepeats) = entry;
            return true;
        }
        factory = null!;
        consumesRepeats = false;
        return false;
    }

    /// <summary>All registered names.</summary>
    public IReadOnlyCollection<string> Names => factories.Keys.Order(StringComparer.Ordinal).ToArray();
}
