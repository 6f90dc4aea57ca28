using static TorchSharp.torch.nn;

namespace Osprey.Models.Building;

/// <summary>One built layer: the module plus the plain facts the model keeps about it.</summary>
/// <param name="Index">Layer index.</param>
/// <param name="From">Input indices as written (−1 = previous).</param>
/// <param name="Repeats">Repeats after depth scaling.</param>
/// <param name="ModuleName">Module name as written in the YAML.</param>
/// <param name="Arguments">Resolved args for the summary.</param>
/// <param name="OutChannels">Output channels.</param>
/// <param name="Module">The layer.</param>
public sealed record BuiltLayer(int Index, int[] From, int Repeats, string ModuleName, string Arguments, long OutChannels,
    Module Module);

/// <summary>Ultralytics' parse_model: YAML rows → modules with resolved channels, via a <see cref="ModuleRegistry"/>.</summary>
public static class ModelBuilder
{
    /// <summary>Builds every layer of <paramref name="config"/> in order with the factories of <paramref name="registry"/>.</summary>
    /// <exception cref="InvalidDataException">Unknown module, bad <c>from</c> index or bad args (names the file).</exception>
    public static IReadOnlyList<BuiltLayer> Build(ModelConfig config, ModuleRegistry registry)
    {
        var layers = new List<BuiltLayer>();
        var channels = new List<long>();
        foreach (var row in config.Layers)
        {
            if (!registry.TryGet(row.Module, out var factory, out bool consumesRepeats))
                throw new InvalidDataException(
                    $"{config.Source}: layer {row.Index}: unknown module '{row.Module}' " +
                    $"(known: {string.Join(", ", registry.Names)}).");
            if (row.From.Length == 0) throw new InvalidDataException($"{config.Source}: layer {row.Index}: empty 'from'.");
            var inputs = row.From.Select(f => InputChannels(config, row, channels, f)).ToArray();
            int repeats = row.Repeats > 1 ? Math.Max((int)Math.Round(row.Repeats * config.Depth, MidpointRounding.ToEven), 1) : row.Repeats;
            if (repeats < 1) throw new InvalidDataException($"{config.Source}: layer {row.Index}: repeats must be ≥ 1.");

            LayerBuild build;
            if (consumesRepeats || repeats == 1)
            {
                build = factory(new LayerContext(config, row, inputs, repeats));
            }
            else
            {
                // Ultralytics: nn.Sequential(*(m(*args) for _ in range(n))) with identical args.
                var copies = Enumerable.Range(0, repeats).Select(_ => factory(new LayerContext(config, row, inputs, 1))).ToArray();
                var stack = copies.Select(c => c.Module as Module<TorchSharp.torch.Tensor, TorchSharp.torch.Tensor>
                    ?? throw new InvalidDataException($"{config.Source}: layer {row.Index} ({row.Module}) cannot be repeated.")).ToArray();
                build = new LayerBuild(Sequential(stack), copies[0].OutChannels, copies[0].Arguments);
            }
            layers.Add(new BuiltLayer(row.Index, row.From, repeats, row.Module, build.Arguments, build.OutChannels, build.Module));
            channels.Add(build.OutChannels);
        }
        return layers;
    }

    private static long InputChannels(ModelConfig config, LayerRow row, List<long> channels, int from)
    {
        if (row.Index == 0 && from == -1) return config.InputChannels;
        int index = from < 0 ? row.Index + from : from;
        if (index < 0 || index >= row.Index)
            throw new InvalidDataException($"{config.Source}: layer {row.Index}: 'from' {from} does not name an earlier layer.");
        return channels[index];
    }
}
