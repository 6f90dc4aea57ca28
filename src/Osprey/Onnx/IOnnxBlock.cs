namespace Osprey.Onnx;

/// <summary>
/// A block that writes itself into an ONNX graph, beside its forward: a new block is one file with both.
/// <see cref="OnnxExporter"/> walks the model's layers and calls <see cref="Emit"/> on each (through
/// <see cref="OnnxGraph.Emit"/>, which also chains the children of a <c>Sequential</c>).
/// </summary>
public interface IOnnxBlock
{
    /// <summary>
    /// Appends the block's nodes and initializers (fused weights: <see cref="OnnxExporter"/> fuses first) to
    /// <paramref name="graph"/>; returns the name of the block's output.
    /// </summary>
    /// <param name="graph">The graph being written (options, proto helpers).</param>
    /// <param name="prefix">The block's module path, e.g. <c>model.2</c> or <c>model.2.m.0</c>: initializer names are
    /// its state-dict keys (<c>model.2.cv1.conv.weight</c>), node names its scope (<see cref="OnnxGraph.Scope"/>).</param>
    /// <param name="inputs">Names of the block's inputs (one per <c>from</c> entry).</param>
    string Emit(OnnxGraph graph, string prefix, IReadOnlyList<string> inputs);
}
