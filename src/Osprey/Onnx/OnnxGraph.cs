using Google.Protobuf;
using Onnx;
using Osprey.Runtime;
using TorchSharp.Modules;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace Osprey.Onnx;

/// <summary>
/// An ONNX graph being written, and the proto helpers blocks emit themselves with (<see cref="IOnnxBlock"/>): nodes,
/// initializers (fp16 when <see cref="OnnxExportOptions.Half"/>), attributes, value infos, the opset-dependent forms of
/// Split, Unsqueeze and Softmax, and the final model proto with its metadata. Names follow PyTorch's exporter as
/// Ultralytics' files have them: initializers by state-dict key, nodes by module scope (<c>/model.2/cv1/conv/Conv</c>).
/// </summary>
public sealed class OnnxGraph
{
    /// <summary>Name of the graph's output (Ultralytics' <c>output0</c>).</summary>
    public const string OutputName = "output0";

    private readonly GraphProto graph = new() { Name = "main_graph" };
    private int counter;

    /// <param name="options">Opset, half, dynamic and the export size.</param>
    public OnnxGraph(OnnxExportOptions options)
    {
        Options = options;
        FloatType = options.Half ? OnnxTensors.DataType.Float16 : OnnxTensors.DataType.Float;
    }

    /// <summary>The export's settings (opset, half, dynamic, batch, height, width).</summary>
    public OnnxExportOptions Options { get; }

    /// <summary>The ONNX element type of the graph's floats (float, or float16 for a half export).</summary>
    public int FloatType { get; }

    /// <summary>
    /// Writes <paramref name="module"/>: an <see cref="IOnnxBlock"/> emits itself; a <c>Sequential</c> chains its
    /// children (named <c>prefix.0</c>, <c>prefix.1</c>, …). Returns the output's name.
    /// </summary>
    /// <exception cref="NotSupportedException">A module with no ONNX form.</exception>
    public string Emit(Module module, string prefix, IReadOnlyList<string> inputs)
    {
        if (module is IOnnxBlock block) return block.Emit(this, prefix, inputs);
        if (module is Sequential sequential && inputs.Count == 1)
        {
            string current = inputs[0];
            foreach (var (name, child) in sequential.named_children()) current = Emit(child, $"{prefix}.{name}", [current]);
            return current;
        }
        throw new NotSupportedException($"ONNX export: {prefix} ({module.GetType().Name}) has no ONNX form (see IOnnxBlock).");
    }

    /// <summary>The node scope of a module path: <c>model.2.m.0.cv1</c> → <c>/model.2/m/0/cv1</c>.</summary>
    public static string Scope(string prefix) =>
        "/" + prefix.Replace('.', '/').Replace("model/", "model.", StringComparison.Ordinal);

    /// <summary>Declares a graph input of <see cref="FloatType"/>; <paramref name="dims"/> are sizes (long) or names (string).</summary>
    public void AddInput(string name, params object[] dims) => graph.Input.Add(ValueInfo(name, dims));

    /// <summary>Declares a graph output of <see cref="FloatType"/>; <paramref name="dims"/> as for <see cref="AddInput"/>.</summary>
    public void AddOutput(string name, params object[] dims) => graph.Output.Add(ValueInfo(name, dims));

    /// <summary>Appends a node with one output, named <c>{name}_output_0</c>; returns that name.</summary>
    public string Node(string op, string name, IReadOnlyList<string> inputs, params AttributeProto[] attributes) =>
        NamedNode(op, name, inputs, name + "_output_0", attributes);

    /// <summary>Appends a node whose one output is named <paramref name="output"/>; returns it.</summary>
    public string NamedNode(string op, string name, IReadOnlyList<string> inputs, string output, params AttributeProto[] attributes)
    {
        var node = new NodeProto { OpType = op, Name = name };
        node.Input.AddRange(inputs);
        node.Output.Add(output);
        node.Attribute.AddRange(attributes);
        graph.Node.Add(node);
        return output;
    }

    /// <summary>Appends a node with <paramref name="outputs"/> outputs, named <c>{name}_output_{i}</c> (TopK's values and
    /// indices); returns their names.</summary>
    public string[] Nodes(string op, string name, IReadOnlyList<string> inputs, int outputs, params AttributeProto[] attributes)
    {
        var node = new NodeProto { OpType = op, Name = name };
        node.Input.AddRange(inputs);
        var names = Enumerable.Range(0, outputs).Select(i => $"{name}_output_{i}").ToArray();
        node.Output.AddRange(names);
        node.Attribute.AddRange(attributes);
        graph.Node.Add(node);
        return names;
    }

    /// <summary>
    /// A Conv node applying <paramref name="conv"/> (its weight and bias as initializers <c>{key}.weight</c>,
    /// <c>{key}.bias</c>; its kernel, stride, padding, dilation and groups as attributes).
    /// </summary>
    public string Conv(string name, string input, string key, Conv2d conv)
    {
        var inputs = new List<string> { input, Initializer(key + ".weight", conv.weight!) };  // (c_out, c_in/g, kh, kw)
        if (conv.bias is { } bias) inputs.Add(Initializer(key + ".bias", bias));              // (c_out)
        long[] kernel = conv.kernel_size, padding = conv.padding ?? new[] { kernel[0] / 2, kernel[1] / 2 };
        return Node("Conv", name, inputs,
            Attr("dilations", conv.dilation), Attr("group", conv.groups), Attr("kernel_shape", kernel),
            Attr("pads", padding[0], padding[1], padding[0], padding[1]), Attr("strides", conv.stride));
    }

    /// <summary>Adds a float initializer (float16 in a half export unless <paramref name="forceFloat"/>); a name
    /// already taken gets a numeric suffix. Returns the name.</summary>
    public string Initializer(string name, Tensor value, bool forceFloat = false)
    {
        if (graph.Initializer.Any(t => t.Name == name)) name += "_" + counter++;
        graph.Initializer.Add(Options.Half && !forceFloat ? OnnxTensors.FromHalf(name, value) : OnnxTensors.FromFloat(name, value));
        return name;
    }

    /// <summary>Adds a 1-D int64 initializer (shapes, sizes, axes) under a fresh name; returns it.</summary>
    public string Int64s(params long[] values)
    {
        string name = $"const_i64_{counter++}";
        graph.Initializer.Add(OnnxTensors.FromInt64(name, values));
        return name;
    }

    /// <summary>Adds a 0-D int64 initializer named <paramref name="name"/>; returns it.</summary>
    public string Int64Scalar(string name, long value)
    {
        graph.Initializer.Add(OnnxTensors.FromInt64(name, new[] { value }, Array.Empty<long>()));
        return name;
    }

    // ── opset-dependent forms ─────────────────────────────────────────────────────────────────────────────────

    /// <summary>Split along axis 1 into <paramref name="sizes"/>: the sizes are an input from opset 13, an attribute before.</summary>
    public string[] Split(string name, string input, params long[] sizes) => SplitAlong(name, input, 1, sizes);

    /// <summary>Split along <paramref name="axis"/> into <paramref name="sizes"/> (opset forms as <see cref="Split"/>).</summary>
    public string[] SplitAlong(string name, string input, long axis, params long[] sizes)
    {
        var node = new NodeProto { OpType = "Split", Name = name };
        node.Input.Add(input);
        if (Options.Opset >= 13) node.Input.Add(Int64s(sizes));
        var outputs = Enumerable.Range(0, sizes.Length).Select(i => $"{name}_output_{i}").ToArray();
        node.Output.AddRange(outputs);
        node.Attribute.Add(Attr("axis", axis));
        if (Options.Opset < 13) node.Attribute.Add(Attr("split", sizes));
        graph.Node.Add(node);
        return outputs;
    }

    /// <summary>Unsqueeze at one axis: the axes are an input from opset 13, an attribute before.</summary>
    public string Unsqueeze(string name, string input, long axis) => Options.Opset >= 13
        ? Node("Unsqueeze", name, [input, Int64s(axis)])
        : Node("Unsqueeze", name, [input], Attr("axes", axis));

    /// <summary>
    /// Softmax over axis 1 of a 4-D tensor. Before opset 13 Softmax flattens the input to 2-D at its axis (normalising
    /// over every dimension from it on), so the axis is moved last, normalised, and moved back.
    /// </summary>
    public string SoftmaxAxis1(string name, string input)
    {
        if (Options.Opset >= 13) return Node("Softmax", name, [input], Attr("axis", 1));
        string last = Node("Transpose", name + "/to_last", [input], Attr("perm", 0, 2, 3, 1));       // (b, d2, d3, d1)
        string soft = Node("Softmax", name, [last], Attr("axis", 3));
        return Node("Transpose", name + "/back", [soft], Attr("perm", 0, 3, 1, 2));                  // (b, d1, d2, d3)
    }

    /// <summary>A Cast to the graph's float type.</summary>
    public string CastFloat(string name, string input) => Node("Cast", name, [input], Attr("to", FloatType));

    // ── attributes ────────────────────────────────────────────────────────────────────────────────────────────

    /// <summary>An integer attribute (<c>axis</c>, <c>group</c>, <c>ceil_mode</c>, <c>to</c>, <c>keepdims</c>,
    /// <c>largest</c>, <c>sorted</c> with one value) or an integer-list attribute (any other name).</summary>
    public static AttributeProto Attr(string name, params long[] values)
    {
        if (values.Length == 1 && name is "axis" or "group" or "ceil_mode" or "to" or "keepdims" or "largest" or "sorted")
            return new AttributeProto { Name = name, Type = AttributeProto.Types.AttributeType.Int, I = values[0] };
        var attribute = new AttributeProto { Name = name, Type = AttributeProto.Types.AttributeType.Ints };
        attribute.Ints.AddRange(values);
        return attribute;
    }

    /// <summary>A string attribute.</summary>
    public static AttributeProto Attr(string name, string value) =>
        new() { Name = name, Type = AttributeProto.Types.AttributeType.String, S = ByteString.CopyFromUtf8(value) };

    /// <summary>A float attribute.</summary>
    public static AttributeProto Attr(string name, float value) =>
        new() { Name = name, Type = AttributeProto.Types.AttributeType.Float, F = value };

    // ── the model ─────────────────────────────────────────────────────────────────────────────────────────────

    /// <summary>The model proto: this graph, the opset with its IR version, Osprey as producer, <paramref name="metadata"/>.</summary>
    public ModelProto ToModel(IEnumerable<(string Key, string Value)> metadata)
    {
        var proto = new ModelProto
        {
            IrVersion = IrVersion(Options.Opset),
            ProducerName = "osprey",
            ProducerVersion = TorchRuntime.OspreyVersion,
            Graph = graph,
        };
        proto.OpsetImport.Add(new OperatorSetIdProto { Domain = "", Version = Options.Opset });
        foreach (var (key, value) in metadata) proto.MetadataProps.Add(new StringStringEntryProto { Key = key, Value = value });
        return proto;
    }

    // The IR version each opset was released with (onnx/helper.py VERSION_TABLE).
    private static long IrVersion(int opset) => opset switch { 11 => 6, <= 14 => 7, <= 18 => 8, <= 20 => 9, _ => 10 };

    private ValueInfoProto ValueInfo(string name, object[] dims)
    {
        var shape = new TensorShapeProto();
        foreach (var d in dims)
            shape.Dim.Add(d is string s ? new TensorShapeProto.Types.Dimension { DimParam = s } : new TensorShapeProto.Types.Dimension { DimValue = (long)d });
        return new ValueInfoProto
        {
            Name = name,
            Type = new TypeProto { TensorType = new TypeProto.Types.Tensor { ElemType = FloatType, Shape = shape } },
        };
    }
}
