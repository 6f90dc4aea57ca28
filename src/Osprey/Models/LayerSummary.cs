namespace Osprey.Models;

/// <summary>One row of a model summary table (Ultralytics' "from n params module arguments").</summary>
/// <param name="Index">Layer index.</param>
/// <param name="From">Inputs as written, e.g. <c>-1</c> or <c>[-1, 6]</c>.</param>
/// <param name="Repeats">Repeats after depth scaling.</param>
/// <param name="Parameters">Parameter count of the layer.</param>
/// <param name="Module">Module name as written in the YAML.</param>
/// <param name="Arguments">Resolved constructor arguments.</param>
public sealed record LayerSummary(int Index, string From, int Repeats, long Parameters, string Module, string Arguments);
