using Onnx;
using static TorchSharp.torch;

namespace Osprey.Onnx;

/// <summary>One convolution's dequantised weights.</summary>
internal sealed record OnnxConv(string NodeName, string NodeOp, string? Key, Tensor Weight, Tensor? Bias, bool Quantized)
{
    public Tensor? IntegerWeight { get; init; }
    public Tensor? WeightScale { get; init; }
    public long[] Stride { get; init; } = { 1, 1 };
    public long[] Pads { get; init; } = { 0, 0, 0, 0 };
    public long[] Dilation { get; init; } = { 1, 1 };
    public long Group { get; init; } = 1;
}

/// <summary>
/// Reads the convolutions of an ONNX graph for <see cref="OnnxImport"/>: producer/consumer maps and constant folding
/// of the weight paths (DequantizeLinear, ConvInteger → Cast → Mul(scale) → Add(bias), Reshape, …).
/// </summary>
internal sealed class OnnxConvReader
{
    private readonly Dictionary<string, TensorProto> initializers;
    private readonly Dictionary<string, NodeProto> producers = new();
    private readonly Dictionary<string, List<NodeProto>> consumers = new();

    public OnnxConvReader(GraphProto graph)
    {
        Nodes = graph.Node.ToList();
        initializers = graph.Initializer.GroupBy(t => t.Name).ToDictionary(g => g.Key, g => g.Last());
        foreach (var node in Nodes)
        {
            foreach (var output in node.Output) producers[output] = node;
            foreach (var input in node.Input.Where(i => i.Length > 0))
            {
                if (!consumers.TryGetValue(input, out var list)) consumers[input] = list = new List<NodeProto>();
                list.Add(node);
            }
        }
    }

    public IReadOnlyList<NodeProto> Nodes { get; }

    public OnnxConv ReadConv(NodeProto node, string path)
    {
        string Where() => $"{path}: {node.OpType} '{node.Name}'";
        if (node.OpType == "Conv")
        {
            var (weight, quantized) = Constant(node.Input[1]);
            if (weight is null) throw new InvalidDataException($"{Where()}: weight '{node.Input[1]}' is not constant.");
            Tensor? bias = node.Input.Count > 2 && node.Input[2].Length > 0 ? Constant(node.Input[2]).Value : FollowBias(node.Output[0]);
            return new OnnxConv(node.Name, node.OpType, Key(node, node.Input[1]), weight, bias, quantized);
        }
        // ConvInteger(x_q, w_q, x_zp, w_zp) → Cast → Mul(·, x_scale · w_scale) → Add(bias)
        var (q, _) = Constant(node.Input[1]);
        if (q is null) throw new InvalidDataException($"{Where()}: quantised weight is not constant.");
        var zeroPoint = node.Input.Count > 3 && node.Input[3].Length > 0 ? Constant(node.Input[3]).Value : null;
        var cast = Single(node.Output[0], "Cast");
        var scaled = cast is null ? null : Single(cast.Output[0], "Mul");
        if (scaled is null) throw new InvalidDataException($"{Where()}: expected Cast → Mul(scale) after it.");
        string scaleName = scaled.Input[0] == cast!.Output[0] ? scaled.Input[1] : scaled.Input[0];
        var weightScale = WeightScale(scaleName) ?? throw new InvalidDataException($"{Where()}: weight scale not found.");
        long outChannels = q.shape[0];
        var perChannel = new long[] { -1, 1, 1, 1 };
        var zp = zeroPoint is null ? zeros(1) : zeroPoint.numel() == outChannels && outChannels > 1 ? zeroPoint.reshape(perChannel) : zeroPoint.reshape(-1)[0];
        var sc = weightScale.numel() == outChannels && outChannels > 1 ? weightScale.reshape(perChannel) : weightScale.reshape(-1)[0];
        var integer = q - zp;
        var dequantised = integer * sc;
        long[] Ints(string name, long[] fallback) => node.Attribute.FirstOrDefault(a => a.Name == name) is { } a && a.Ints.Count > 0 ? a.Ints.ToArray() : fallback;
        return new OnnxConv(node.Name, node.OpType, Key(node, node.Input[1]), dequantised, FollowBias(scaled.Output[0]), true)
        {
            IntegerWeight = integer, WeightScale = weightScale.reshape(-1), Stride = Ints("strides", new long[] { 1, 1 }),
            Pads = Ints("pads", new long[] { 0, 0, 0, 0 }), Dilation = Ints("dilations", new long[] { 1, 1 }),
            Group = node.Attribute.FirstOrDefault(a => a.Name == "group")?.I ?? 1,
        };
    }

    private Tensor? WeightScale(string name)
    {
        var (value, _) = Constant(name);
        if (value is not null) return value;
        if (producers.TryGetValue(name, out var mul) && mul.OpType == "Mul")
        {
            // x_scale (dynamic) · w_scale (constant)
            foreach (var input in mul.Input)
                if (Constant(input).Value is { } constant) return constant;
        }
        return null;
    }

    private Tensor? FollowBias(string output)
    {
        var add = Single(output, "Add");
        if (add is null) return null;
        string other = add.Input[0] == output ? add.Input[1] : add.Input[0];
        return Constant(other).Value?.reshape(-1);
    }

    private NodeProto? Single(string output, string opType) =>
        consumers.TryGetValue(output, out var list) && list.Count == 1 && list[0].OpType == opType ? list[0] : null;

    /// <summary>Folds initializers through DequantizeLinear, Reshape, Identity, Cast, Unsqueeze and Constant.</summary>
    private (Tensor? Value, bool Quantized) Constant(string name)
    {
        if (initializers.TryGetValue(name, out var init)) return (OnnxTensors.ToFloat(init), false);
        if (!producers.TryGetValue(name, out var node)) return (null, false);
        switch (node.OpType)
        {
            case "Constant":
                var attribute = node.Attribute.FirstOrDefault(a => a.Name == "value");
                return (attribute?.T is { } t ? OnnxTensors.ToFloat(t) : null, false);
            case "Identity":
            case "Cast":
                return Constant(node.Input[0]);
            case "DequantizeLinear":
            {
                var (x, _) = Constant(node.Input[0]);
                var (scale, _) = Constant(node.Input[1]);
                if (x is null || scale is null) return (null, false);
                var zp = node.Input.Count > 2 && node.Input[2].Length > 0 ? Constant(node.Input[2]).Value : null;
                long axis = node.Attribute.FirstOrDefault(a => a.Name == "axis")?.I ?? 1;
                if (axis < 0) axis += x.dim();
                if (scale.numel() > 1)
                {
                    var shape = Enumerable.Repeat(1L, (int)x.dim()).ToArray();
                    shape[axis] = -1;
                    scale = scale.reshape(shape);
                    zp = zp?.reshape(shape);
                }
                return ((x - (zp ?? zeros(1))) * scale, true);
            }
            case "Reshape":
            {
                var (x, quantized) = Constant(node.Input[0]);
                if (x is null || !initializers.TryGetValue(node.Input[1], out var shapeProto)) return (null, false);
                var shape = OnnxTensors.ToInt64(shapeProto);
                for (int i = 0; i < shape.Length; i++) if (shape[i] == 0) shape[i] = x.shape[i];
                return (x.reshape(shape), quantized);
            }
            case "Unsqueeze":
            case "Squeeze":
                var (value, q) = Constant(node.Input[0]);
                return (value, q);
            default:
                return (null, false);
        }
    }

    /// <summary>Our module key: from the weight initializer name, else from the export scope of the node name.</summary>
    private static string? Key(NodeProto node, string weightName)
    {
        foreach (var suffix in new[] { "_quantized", "_DequantizeLinear_Output", "_dequantized" })
            if (weightName.EndsWith(suffix, StringComparison.Ordinal)) weightName = weightName[..^suffix.Length];
        if (weightName.StartsWith("model.", StringComparison.Ordinal) && weightName.EndsWith(".weight", StringComparison.Ordinal))
            return weightName[..^".weight".Length];
        // "/model.22/cv2.0/cv2.0.2/Conv_quant" → model.22.cv2.0.2; "/model.2/m.0/cv1/conv/Conv" → model.2.m.0.cv1.conv
        var segments = node.Name.Split('/', StringSplitOptions.RemoveEmptyEntries);
        if (segments.Length < 2 || !segments[0].StartsWith("model.", StringComparison.Ordinal)) return null;
        var parts = new List<string>();
        foreach (var segment in segments[..^1])
        {
            if (parts.Count > 0 && segment.StartsWith(parts[^1] + ".", StringComparison.Ordinal)) parts[^1] = segment;
            else parts.Add(segment);
        }
        return string.Join(".", parts);
    }
}
