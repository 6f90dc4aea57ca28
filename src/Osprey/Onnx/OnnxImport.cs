using System.Globalization;
using System.Text.Json;
using Onnx;
using Osprey.Models;
using Osprey.Models.Blocks;
using Osprey.Models.Building;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Osprey.Onnx;

/// <summary>What <see cref="OnnxImport.Import"/> read from an ONNX file.</summary>
/// <param name="Model">The rebuilt, unfused model (eval mode) carrying the file's weights.</param>
/// <param name="Scale">Scale letter inferred from channel widths.</param>
/// <param name="Nc">Classes (output rows − 4).</param>
/// <param name="Quantized">Convolutions read from int8/uint8 weights (ConvInteger or DequantizeLinear).</param>
/// <param name="Convolutions">Convolutions whose weights were loaded.</param>
/// <param name="Metadata">The file's metadata_props.</param>
/// <param name="EmulatedInputs">Convolutions whose inputs are quantised on the fly (see <see cref="DynamicQuantization"/>).</param>
public sealed record OnnxImportResult(DetectionModel Model, string Scale, int Nc, int Quantized, int Convolutions,
    IReadOnlyDictionary<string, string> Metadata, int EmulatedInputs);

/// <summary>
/// Imports the weights of an Ultralytics YOLOv8 ONNX export (BN-fused; plain fp32/fp16 Conv, QDQ
/// DequantizeLinear → Conv, or dynamically quantised DynamicQuantizeLinear → ConvInteger → Cast → Mul(scale) → Add(bias))
/// into a <see cref="DetectionModel"/> built from the embedded <c>yolov8.yaml</c>. Quantised weights are
/// dequantised as (q − zero_point) · scale, per tensor or per output channel. Each ONNX convolution is matched to
/// a module by its export scope name (<c>/model.2/m.0/cv1/conv/Conv</c>) or weight name (<c>model.2.m.0.cv1.conv.weight</c>);
/// convolutions without such names are matched in graph order to the remaining modules of the same shape.
/// The fused result is split back so the model trains on: conv weight = fused weight; BN weight 1, bias = fused
/// bias, running mean 0, running var 1 − eps (so BN is the identity plus the bias).
/// </summary>
public static class OnnxImport
{
    private static readonly string[] ConvOps = { "Conv", "ConvInteger" };

    /// <summary>Imports <paramref name="path"/> and returns the model (see <see cref="Import"/>).</summary>
    public static DetectionModel Load(string path, bool emulateQuantization = true) => Import(path, emulateQuantization).Model;

    /// <summary>Reads the ONNX file, builds the matching YOLOv8 model and loads every convolution.</summary>
    /// <exception cref="InvalidDataException">Not a YOLOv8 detection export, or weights that do not fit.</exception>
    /// <param name="path">The .onnx file.</param>
    /// <param name="emulateQuantization">For ConvInteger convolutions (dynamic int8 quantisation), quantise each
    /// input as ONNX Runtime's DynamicQuantizeLinear does (uint8, per tensor, range including 0) and sum the integer
    /// products exactly (see <see cref="DynamicQuantization"/>), and use ONNX Runtime's CPU sigmoid (SiLU, class
    /// scores; <see cref="MlasLogistic"/>) and softmax (DFL; <see cref="MlasSoftmax"/>), so that in eval mode on the CPU
    /// the model's output equals ONNX Runtime's on that file bit for bit; false gives the plain float model with
    /// dequantised weights.</param>
    public static OnnxImportResult Import(string path, bool emulateQuantization = true)
    {
        if (!File.Exists(path)) throw new FileNotFoundException($"ONNX file '{path}' not found.", path);
        ModelProto proto;
        try
        {
            proto = ModelProto.Parser.ParseFrom(File.ReadAllBytes(path));
        }
        catch (Google.Protobuf.InvalidProtocolBufferException e)
        {
            throw new InvalidDataException($"{path}: not an ONNX model ({e.Message}).", e);
        }
        var metadata = proto.MetadataProps.GroupBy(p => p.Key).ToDictionary(g => g.Key, g => g.Last().Value);
        if (metadata.TryGetValue("task", out var task) && task != "detect")
            throw new InvalidDataException($"{path}: task '{task}' is not supported (detect only).");

        var graph = new OnnxGraph(proto.Graph);
        var convs = new List<OnnxConv>();
        try
        {
            foreach (var node in graph.Nodes.Where(n => ConvOps.Contains(n.OpType)))
            {
                using var scope = NewDisposeScope();
                var conv = graph.ReadConv(node, path);
                conv.Weight.MoveToOuterDisposeScope();
                conv.Bias?.MoveToOuterDisposeScope();
                conv.IntegerWeight?.MoveToOuterDisposeScope();
                conv.WeightScale?.MoveToOuterDisposeScope();
                convs.Add(conv);
            }
            if (convs.Count == 0) throw new InvalidDataException($"{path}: no convolutions found.");
            return Build(path, proto, metadata, convs, emulateQuantization);
        }
        finally
        {
            foreach (var conv in convs)
            {
                conv.Weight.Dispose();
                conv.Bias?.Dispose();
                conv.IntegerWeight?.Dispose();
                conv.WeightScale?.Dispose();
            }
        }
    }

    private static OnnxImportResult Build(string path, ModelProto proto, Dictionary<string, string> metadata, List<OnnxConv> convs,
        bool emulateQuantization)
    {

        int nc = InferNc(proto.Graph, convs, path);
        var names = metadata.TryGetValue("names", out var namesText) ? UltralyticsMetadata.ParseNames(namesText) : null;
        if (names is not null && names.Count != nc)
            throw new InvalidDataException($"{path}: metadata has {names.Count} names but the output has {nc} classes.");

        var baseConfig = ModelConfig.Load("yolov8.yaml");
        long firstWidth = convs[0].Weight.shape[0];
        string? scale = null;
        DetectionModel? model = null;
        var quantizedKeys = new Dictionary<string, OnnxConv>(StringComparer.Ordinal);
        var failures = new List<string>();
        foreach (var candidate in ScaleCandidates(baseConfig))
        {
            var config = BuildConfig(baseConfig, candidate, nc, names, path);
            if (Math.Min(64, config.MaxChannels) * config.Width != firstWidth) continue;
            var built = new DetectionModel(config);
            quantizedKeys.Clear();
            var problem = TryLoad(built, convs, quantizedKeys);
            if (problem is null)
            {
                scale = candidate;
                model = built;
                break;
            }
            failures.Add($"{candidate}: {problem}");
            built.Dispose();
        }
        if (model is null || scale is null)
            throw new InvalidDataException($"{path}: the weights fit no YOLOv8 scale (first conv has {firstWidth} channels). {string.Join("; ", failures)}");
        model.eval();
        if (emulateQuantization && quantizedKeys.Count > 0)
            foreach (var (name, module) in model.named_modules())
                if (quantizedKeys.TryGetValue(name, out var source) && module is Conv2d conv)
                    DynamicQuantization.Attach(conv, source.IntegerWeight!, source.WeightScale!, source.Stride, source.Pads, source.Dilation, source.Group);
        if (emulateQuantization && quantizedKeys.Count > 0)
        {
            // ONNX Runtime's own sigmoid and softmax: libtorch's differ in the last bits, which moves values across
            // rounding steps of the next dynamic quantisation.
            foreach (var block in model.modules().OfType<Conv>())
                if (block.Activation is SiLU silu) MlasLogistic.AttachSilu(silu);
            foreach (var head in model.modules().OfType<Detect>())
            {
                head.ScoreFunction = MlasLogistic.Logistic;
                head.Dfl.SoftmaxFunction = MlasSoftmax.Softmax;
            }
        }
        return new OnnxImportResult(model, scale, nc, convs.Count(c => c.Quantized), convs.Count, metadata,
            emulateQuantization ? quantizedKeys.Count : 0);
    }

    private static IEnumerable<string> ScaleCandidates(ModelConfig baseConfig)
    {
        using var reader = new StringReader(baseConfig.Text);
        var stream = new YamlDotNet.RepresentationModel.YamlStream();
        stream.Load(reader);
        var root = (YamlDotNet.RepresentationModel.YamlMappingNode)stream.Documents[0].RootNode;
        var scales = (YamlDotNet.RepresentationModel.YamlMappingNode)root.Children[new YamlDotNet.RepresentationModel.YamlScalarNode("scales")];
        return scales.Children.Keys.Select(k => ((YamlDotNet.RepresentationModel.YamlScalarNode)k).Value!).ToArray();
    }

    private static ModelConfig BuildConfig(ModelConfig baseConfig, string scale, int nc, IReadOnlyList<string>? names, string path)
    {
        var scaled = ModelConfig.Parse(baseConfig.Text, baseConfig.Source, scale, nc);
        string text = scaled.ToPinnedYaml();
        if (names is not null) text = "names: [" + string.Join(", ", names.Select(n => JsonSerializer.Serialize(n))) + "]\n" + text;
        return ModelConfig.Parse(text, path, scale, nc);
    }

    private static int InferNc(GraphProto graph, IReadOnlyList<OnnxConv> convs, string path)
    {
        var output = graph.Output.FirstOrDefault() ?? throw new InvalidDataException($"{path}: the graph has no output.");
        var dims = output.Type?.TensorType?.Shape?.Dim;
        if (dims is { Count: 3 } && dims[1].HasDimValue && dims[1].DimValue > 4) return (int)dims[1].DimValue - 4;
        var classConv = convs.FirstOrDefault(c => c.Key is { } key && key.EndsWith("cv3.0.2", StringComparison.Ordinal))
            ?? throw new InvalidDataException($"{path}: cannot tell the number of classes (output '{output.Name}' has no static shape).");
        return (int)classConv.Weight.shape[0];
    }

    /// <summary>Copies every convolution into <paramref name="model"/>; returns a problem or null.</summary>
    private static string? TryLoad(DetectionModel model, IReadOnlyList<OnnxConv> convs, IDictionary<string, OnnxConv> quantizedKeys)
    {
        using var scope = NewDisposeScope();
        var state = model.state_dict();
        // Targets: Conv blocks (prefix P: P.conv.weight + P.bn.*) and bare Conv2d (K.weight, K.bias), DFL excluded.
        var targets = new List<string>();
        foreach (var (name, module) in model.named_modules())
        {
            if (module is Conv) targets.Add(name + ".conv");
            else if (module is Conv2d && (!name.EndsWith(".conv", StringComparison.Ordinal) || name.EndsWith(".dfl.conv", StringComparison.Ordinal)))
                targets.Add(name);
        }
        bool IsBlock(string key) => state.ContainsKey(key[..^".conv".Length] + ".bn.weight") && key.EndsWith(".conv", StringComparison.Ordinal);

        var assignment = new Dictionary<string, OnnxConv>();
        var unnamed = new List<OnnxConv>();
        foreach (var conv in convs)
        {
            if (conv.Key is { } k && targets.Contains(k) && !assignment.ContainsKey(k)) assignment[k] = conv;
            else unnamed.Add(conv);
        }
        // Graph order for the rest: the next unassigned module of the same weight shape.
        var remaining = targets.Where(t => !assignment.ContainsKey(t)).ToList();
        foreach (var conv in unnamed)
        {
            int index = remaining.FindIndex(t => state[t + ".weight"].shape.SequenceEqual(conv.Weight.shape));
            if (index < 0) return $"no module left for ONNX conv '{conv.NodeName}' of shape [{string.Join(", ", conv.Weight.shape)}]";
            assignment[remaining[index]] = conv;
            remaining.RemoveAt(index);
        }
        if (remaining.Count > 0) return $"{remaining.Count} modules got no ONNX weights ({string.Join(", ", remaining.Take(5))})";

        using var noGrad = no_grad();
        foreach (var (key, conv) in assignment)
        {
            if (conv.IntegerWeight is not null) quantizedKeys[key] = conv;
            var weight = state[key + ".weight"];
            if (!weight.shape.SequenceEqual(conv.Weight.shape))
                return $"{key}: ONNX [{string.Join(", ", conv.Weight.shape)}] vs model [{string.Join(", ", weight.shape)}]";
            long outChannels = weight.shape[0];
            var bias = conv.Bias?.reshape(-1) ?? zeros(outChannels);
            if (bias.shape[0] != outChannels) return $"{key}: bias of {bias.shape[0]} for {outChannels} channels";
            weight.copy_(conv.Weight);
            if (IsBlock(key))
            {
                string bn = key[..^".conv".Length] + ".bn";
                state[bn + ".weight"].fill_(1.0);
                state[bn + ".bias"].copy_(bias);
                state[bn + ".running_mean"].zero_();
                state[bn + ".running_var"].fill_(1.0 - Conv.BatchNormEps);
            }
            else if (state.TryGetValue(key + ".bias", out var targetBias)) targetBias.copy_(bias);
            else if (conv.Bias is not null) return $"{key}: the module has no bias but the ONNX conv has one";
        }
        return null;
    }

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

    /// <summary>Producer/consumer maps and constant folding of the weight paths.</summary>
    private sealed class OnnxGraph
    {
        private readonly Dictionary<string, TensorProto> initializers;
        private readonly Dictionary<string, NodeProto> producers = new();
        private readonly Dictionary<string, List<NodeProto>> consumers = new();

        public OnnxGraph(GraphProto graph)
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

    /// <summary>Invariant formatting helper for messages.</summary>
    internal static string Shape(Tensor t) => string.Join(", ", t.shape.Select(d => d.ToString(CultureInfo.InvariantCulture)));
}
