namespace Osprey.Models.Building;

/// <summary>One <c>[from, repeats, module, args]</c> row of an Ultralytics model YAML.</summary>
/// <param name="Index">Layer index (backbone rows first, then head rows).</param>
/// <param name="From">Input layer indices as written (−1 = previous layer).</param>
/// <param name="Repeats">Repeats as written (before depth scaling).</param>
/// <param name="Module">Module name as written (e.g. <c>C2f</c>, <c>nn.Upsample</c>).</param>
/// <param name="Args">Arguments: strings for scalars (with <c>nc</c> already substituted), lists for sequences.</param>
public sealed record LayerRow(int Index, int[] From, int Repeats, string Module, IReadOnlyList<object?> Args);
