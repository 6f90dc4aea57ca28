using Osprey.Onnx;
using static TorchSharp.torch;

namespace Osprey.Models.Heads;

/// <summary>A head's anchor centres (1, 2, A) and strides (1, 1, A) in its ONNX graph (see <see cref="DetectionHead.Emit"/>).</summary>
internal static class OnnxAnchors
{
    /// <summary>Constants for the export size (<see cref="OnnxExportOptions.Height"/> × <see cref="OnnxExportOptions.Width"/>).</summary>
    public static (string Anchors, string Strides) Static(OnnxGraph graph, string prefix, IReadOnlyList<float> strides)
    {
        using var scope = NewDisposeScope();
        var maps = strides.Select(s => zeros(1, 1, (long)(graph.Options.Height / s), (long)(graph.Options.Width / s))).ToArray();
        var (points, strideTensor) = Anchors.Make(maps, strides);                                        // (A, 2), (A, 1)
        string anchors = graph.Initializer($"/{prefix}/anchors", points.transpose(0, 1).unsqueeze(0));        // (1, 2, A)
        string strideRow = graph.Initializer($"/{prefix}/strides", strideTensor.transpose(0, 1).unsqueeze(0)); // (1, 1, A)
        return (anchors, strideRow);
    }

    /// <summary>Computed from the level maps' shapes: x = arange(w) + 0.5, y = arange(h) + 0.5, row-major.</summary>
    public static (string Anchors, string Strides) Dynamic(OnnxGraph graph, string prefix, IReadOnlyList<float> strides,
        IReadOnlyList<string> features)
    {
        using var scope = NewDisposeScope();
        var points = new List<string>();
        var strideRows = new List<string>();
        string zero = graph.Int64Scalar($"/{prefix}/anchor_zero", 0), one = graph.Int64Scalar($"/{prefix}/anchor_one", 1);
        string half = graph.Initializer($"/{prefix}/anchor_half", tensor(0.5f));
        string nothing = graph.Initializer($"/{prefix}/anchor_zero_f", tensor(0f));
        for (int i = 0; i < features.Count; i++)
        {
            string p = $"/{prefix}/anchors{i}";
            string shape = graph.Node("Shape", p + "/Shape", [features[i]]);
            string h = graph.Node("Gather", p + "/Gather_h", [shape, graph.Int64Scalar(p + "/two", 2)], OnnxGraph.Attr("axis", 0));
            string w = graph.Node("Gather", p + "/Gather_w", [shape, graph.Int64Scalar(p + "/three", 3)], OnnxGraph.Attr("axis", 0));
            string sx = graph.Node("Add", p + "/sx", [graph.CastFloat(p + "/cast_x", graph.Node("Range", p + "/Range_x", [zero, w, one])), half]); // (w)
            string sy = graph.Node("Add", p + "/sy", [graph.CastFloat(p + "/cast_y", graph.Node("Range", p + "/Range_y", [zero, h, one])), half]); // (h)
            string row = graph.Unsqueeze(p + "/row", sx, 0);     // (1, w)
            string col = graph.Unsqueeze(p + "/col", sy, 1);     // (h, 1)
            string gx = graph.Node("Add", p + "/gx", [row, graph.Node("Mul", p + "/col0", [col, nothing])]); // (h, w)
            string gy = graph.Node("Add", p + "/gy", [col, graph.Node("Mul", p + "/row0", [row, nothing])]); // (h, w)
            string fx = graph.Node("Reshape", p + "/fx", [gx, graph.Int64s(1, -1)]);      // (1, hw)
            string fy = graph.Node("Reshape", p + "/fy", [gy, graph.Int64s(1, -1)]);
            points.Add(graph.Node("Concat", p + "/xy", [fx, fy], OnnxGraph.Attr("axis", 0)));  // (2, hw)
            string stride = graph.Initializer(p + "/stride", tensor(strides[i]));
            strideRows.Add(graph.Node("Add", p + "/s", [graph.Node("Mul", p + "/fx0", [fx, nothing]), stride])); // (1, hw)
        }
        string anchors = graph.Unsqueeze($"/{prefix}/anchors", graph.Node("Concat", $"/{prefix}/anchors_cat", points, OnnxGraph.Attr("axis", 1)), 0);
        string strideRow = graph.Unsqueeze($"/{prefix}/strides", graph.Node("Concat", $"/{prefix}/strides_cat", strideRows, OnnxGraph.Attr("axis", 1)), 0);
        return (anchors, strideRow);                                                               // (1, 2, A), (1, 1, A)
    }
}
