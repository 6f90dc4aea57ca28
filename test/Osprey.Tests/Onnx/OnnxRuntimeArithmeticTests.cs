using Google.Protobuf;
using Microsoft.ML.OnnxRuntime;
using Microsoft.ML.OnnxRuntime.Tensors;
using Onnx;
using Osprey.Onnx;
using static TorchSharp.torch;
using Tensor = TorchSharp.torch.Tensor;

namespace Osprey.Tests.Onnx;

/// <summary>
/// The pieces that make an imported int8 model compute what ONNX Runtime computes, each against ONNX Runtime itself
/// running a one-operator graph: equal bits, not a tolerance.
/// </summary>
public class OnnxRuntimeArithmeticTests
{
    [Fact]
    public void LogisticAndSiluEqualOnnxRuntimeBitForBit()
    {
        using var scope = NewDisposeScope();
        manual_seed(1);
        // a dense sweep, the clamp at ±18, and values far outside it
        var x = cat(new[]
        {
            linspace(-20, 20, 200_001), randn(100_000) * 4,
            tensor(new[] { 0f, -0f, 18f, -18f, 17.99999f, -17.99999f, 1e-30f, -1e-30f, 100f, -100f, 3e38f, -3e38f }),
        });
        var graph = Graph(new[] { Node("Sigmoid", new[] { "x" }, new[] { "s" }), Node("Mul", new[] { "x", "s" }, new[] { "y" }) },
            "x", x.shape, new[] { "s", "y" });
        var ort = Run(graph, x);
        AssertSameBits(ort[0], MlasLogistic.Logistic(x), "sigmoid");
        AssertSameBits(ort[1], MlasLogistic.Silu(x), "silu");
    }

    [Fact]
    public void SoftmaxOfSixteenBinsEqualsOnnxRuntimeBitForBit()
    {
        using var scope = NewDisposeScope();
        manual_seed(2);
        // DFL-like rows of 16 logits (one peak, a spread), a constant row and a row with a huge gap
        var rows = cat(new[]
        {
            randn(20_000, 16) * 3, randn(20_000, 16) * 0.3 + 2 * nn.functional.one_hot(randint(0, 16, 20_000), 16),
            zeros(1, 16), tensor(Enumerable.Range(0, 16).Select(i => i == 3 ? 120f : 0f).ToArray()).view(1, 16),
        });
        var softmax = Node("Softmax", new[] { "x" }, new[] { "y" });
        softmax.Attribute.Add(new AttributeProto { Name = "axis", Type = AttributeProto.Types.AttributeType.Int, I = 1 });
        var ort = Run(Graph(new[] { softmax }, "x", rows.shape, new[] { "y" }), rows);
        AssertSameBits(ort[0], MlasSoftmax.Softmax(rows), "softmax");
    }

    /// <summary>
    /// DynamicQuantizeLinear → ConvInteger → Cast → Mul(x_scale · w_scale) → Add(bias), as quantize_dynamic writes
    /// it, against <see cref="DynamicQuantization"/>: small weights (sums stay below 2²⁴, float32 convolution) and
    /// large positive ones (sums up to ~5·2²⁴, where a float32 convolution drops bits and the float64 path runs).
    /// </summary>
    [Theory]
    [InlineData(-3, 3)]
    [InlineData(64, 127)]
    public void QuantizedConvolutionEqualsOnnxRuntimeBitForBit(int weightLow, int weightHigh)
    {
        using var scope = NewDisposeScope();
        manual_seed(3);
        const int inChannels = 256, outChannels = 4;
        var x = rand(1, inChannels, 6, 6) * 3.2 - 0.2;                                       // zero point ≈ 16
        var integerWeight = randint(weightLow, weightHigh + 1, new long[] { outChannels, inChannels, 3, 3 }).to_type(ScalarType.Float32);
        const float weightScale = 0.0123f;
        var bias = randn(outChannels);

        var nodes = new[]
        {
            Node("DynamicQuantizeLinear", new[] { "x" }, new[] { "xq", "xs", "xzp" }),
            Node("ConvInteger", new[] { "xq", "w", "xzp", "wzp" }, new[] { "yi" }),
            Node("Cast", new[] { "yi" }, new[] { "yf" }),
            Node("Mul", new[] { "xs", "ws" }, new[] { "s" }),
            Node("Mul", new[] { "yf", "s" }, new[] { "ym" }),
            Node("Add", new[] { "ym", "b" }, new[] { "y" }),
        };
        nodes[1].Attribute.Add(Ints("pads", 1, 1, 1, 1));
        nodes[1].Attribute.Add(Ints("kernel_shape", 3, 3));
        nodes[2].Attribute.Add(new AttributeProto { Name = "to", Type = AttributeProto.Types.AttributeType.Int, I = OnnxTensors.DataType.Float });
        var graph = Graph(nodes, "x", x.shape, new[] { "y" });
        graph.Initializer.Add(Int8("w", integerWeight));
        graph.Initializer.Add(Int8("wzp", zeros(Array.Empty<long>())));
        graph.Initializer.Add(OnnxTensors.FromFloat("ws", tensor(weightScale)));
        graph.Initializer.Add(OnnxTensors.FromFloat("b", bias.view(1, -1, 1, 1)));
        var expected = Run(graph, x)[0];

        using var conv = nn.Conv2d(inChannels, outChannels, 3, padding: 1);
        using (no_grad()) conv.bias!.copy_(bias);
        DynamicQuantization.Attach(conv, integerWeight, tensor(weightScale), new long[] { 1, 1 }, new long[] { 1, 1, 1, 1 },
            new long[] { 1, 1 }, 1);
        conv.eval();
        using (no_grad()) AssertSameBits(expected, conv.call(x), $"weights in [{weightLow}, {weightHigh}]");
    }

    private static void AssertSameBits(Tensor expected, Tensor actual, string what)
    {
        Assert.Equal(expected.shape, actual.shape);
        var e = expected.contiguous().data<float>().ToArray();
        var a = actual.contiguous().data<float>().ToArray();
        int differ = 0, first = -1;
        for (int i = 0; i < e.Length; i++)
            if (BitConverter.SingleToInt32Bits(e[i]) != BitConverter.SingleToInt32Bits(a[i]) && differ++ == 0) first = i;
        Assert.True(differ == 0, $"{what}: {differ} of {e.Length} values differ from ONNX Runtime (first at {first}: {(first < 0 ? 0 : a[first]):R} vs {(first < 0 ? 0 : e[first]):R})");
    }

    private static NodeProto Node(string op, string[] inputs, string[] outputs)
    {
        var node = new NodeProto { OpType = op, Name = op + "_" + outputs[0] };
        node.Input.AddRange(inputs);
        node.Output.AddRange(outputs);
        return node;
    }

    private static AttributeProto Ints(string name, params long[] values)
    {
        var attribute = new AttributeProto { Name = name, Type = AttributeProto.Types.AttributeType.Ints };
        attribute.Ints.AddRange(values);
        return attribute;
    }

    private static TensorProto Int8(string name, Tensor values)
    {
        var data = values.contiguous().data<float>().ToArray().Select(v => unchecked((byte)(sbyte)v)).ToArray();
        var proto = new TensorProto { Name = name, DataType = OnnxTensors.DataType.Int8, RawData = ByteString.CopyFrom(data) };
        proto.Dims.AddRange(values.shape);
        return proto;
    }

    private static GraphProto Graph(IEnumerable<NodeProto> nodes, string input, long[] shape, string[] outputs)
    {
        var graph = new GraphProto { Name = "g" };
        graph.Node.AddRange(nodes);
        graph.Input.Add(Value(input, shape));
        foreach (var output in outputs) graph.Output.Add(new ValueInfoProto { Name = output, Type = FloatType(null) });
        return graph;
    }

    private static ValueInfoProto Value(string name, long[] shape) => new() { Name = name, Type = FloatType(shape) };

    private static TypeProto FloatType(long[]? shape)
    {
        var tensorType = new TypeProto.Types.Tensor { ElemType = OnnxTensors.DataType.Float };
        if (shape is not null)
        {
            tensorType.Shape = new TensorShapeProto();
            foreach (long d in shape) tensorType.Shape.Dim.Add(new TensorShapeProto.Types.Dimension { DimValue = d });
        }
        return new TypeProto { TensorType = tensorType };
    }

    /// <summary>Runs an opset-11 graph in ONNX Runtime (default session options, as the reference) on one float input.</summary>
    private static Tensor[] Run(GraphProto graph, Tensor input)
    {
        var model = new ModelProto { IrVersion = 7, Graph = graph, ProducerName = "osprey-tests" };
        model.OpsetImport.Add(new OperatorSetIdProto { Domain = "", Version = 11 });
        using var session = new InferenceSession(model.ToByteArray());
        var data = input.contiguous().data<float>().ToArray();
        var value = NamedOnnxValue.CreateFromTensor(graph.Input[0].Name, new DenseTensor<float>(data, input.shape.Select(d => (int)d).ToArray()));
        using var results = session.Run(new[] { value });
        return graph.Output.Select(o => results.First(r => r.Name == o.Name).AsTensor<float>())
            .Select(t => tensor(t.ToArray()).reshape(t.Dimensions.ToArray().Select(d => (long)d).ToArray())).ToArray();
    }
}
