using System.Globalization;
using System.Text.Json;
using Onnx;
using Osprey.Models;
using Osprey.Models.Blocks;
using Osprey.Models.Building;
using Osprey.Models.Families;
using Osprey.Models.Heads;
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
/// Imports the weights of an Ultralytics YOLOv8 or YOLO11 ONNX export (BN-fused; plain fp32/fp16 Conv, QDQ
/// DequantizeLinear → Conv, or dynamically quantised DynamicQuantizeLinear → ConvInteger → Cast → Mul(scale) → Add(bias))
/// into a <see cref="DetectionModel"/> rebuilt from the embedded YAML of the family and scale the file's
/// <c>description</c> names (Ultralytics' "Ultralytics YOLO11n model …"; without one, every scale of <c>yolov8.yaml</c>
/// then <c>yolo11.yaml</c> whose first width fits, until one takes every convolution). Quantised weights are
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

    /// <summary>Reads the ONNX file, builds the matching YOLOv8 or YOLO11 model and loads every convolution.</summary>
    /// <exception cref="InvalidDataException">Not a YOLOv8/YOLO11 detection export, or weights that do not fit.</exception>
    /// <param name="path">The .onnx file.</param>
    /// <param name="emulateQuantization">For ConvInteger convolutions (dynamic int8 quantisation), quantise each
    /// input as ONNX Runtime's DynamicQuantizeLinear does (uint8, per tensor, range including 0) and sum the integer
    /// products exactly (see <see cref="DynamicQuantization"/>), and use ONNX Runtime's CPU sigmoid (SiLU, class
    /// scores; <see cref="MlasLogistic"/>) and softmax (DFL; <see cref="MlasSoftmax"/>), so that in eval mode on the CPU
    /// the model's output equals ONNX Runtime's on that file bit for bit; false gives the plain float model with
    /// dequantised weights.</param>
    public static OnnxImportResult Import(string path, bool emulateQuantization = true) =>
        Import(path, null, ModuleRegistry.Default, emulateQuantization);

    /// <summary>
    /// As <see cref="Import(string, bool)"/>, but rebuilds the model from <paramref name="config"/> (each of its scales,
    /// the file's class count and names) with the blocks of <paramref name="registry"/>: an export of a model from a
    /// custom YAML. A null <paramref name="config"/> rebuilds from the family the file's description names, or else
    /// tries the embedded YOLOv8 and YOLO11 configs.
    /// </summary>
    public static OnnxImportResult Import(string path, ModelConfig? config, ModuleRegistry registry, bool emulateQuantization = true)
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

        var graph = new OnnxConvReader(proto.Graph);
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
            return Build(path, proto, metadata, convs, emulateQuantization, config, registry);
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
        bool emulateQuantization, ModelConfig? given, ModuleRegistry registry)
    {
        int nc = InferNc(proto.Graph, convs, path, metadata);
        var names = metadata.TryGetValue("names", out var namesText) ? UltralyticsMetadata.ParseNames(namesText) : null;
        if (names is not null && names.Count != nc)
            throw new InvalidDataException($"{path}: metadata has {names.Count} names but the output has {nc} classes.");

        long firstWidth = convs[0].Weight.shape[0];
        string? scale = null;
        DetectionModel? model = null;
        var quantizedKeys = new Dictionary<string, OnnxConv>(StringComparer.Ordinal);
        var failures = new List<string>();
        var candidates = Candidates(metadata.GetValueOrDefault("description"), given, registry, out string families);
        foreach (var (baseConfig, candidate) in candidates)
        {
            var config = BuildConfig(baseConfig, candidate, nc, names, path);
            if (given is null && Math.Min(64, config.MaxChannels) * config.Width != firstWidth) continue;
            var built = new DetectionModel(config, registry);
            quantizedKeys.Clear();
            var problem = TryLoad(built, convs, quantizedKeys);
            if (problem is null)
            {
                scale = candidate;
                model = built;
                break;
            }
            failures.Add($"{baseConfig.Source} {candidate}: {problem}");
            built.Dispose();
        }
        if (model is null || scale is null)
            throw new InvalidDataException($"{path}: the weights fit no {families} scale (first conv has {firstWidth} channels). {string.Join("; ", failures)}");
        model.eval();
        string? data = UltralyticsMetadata.TrainedOn(metadata.GetValueOrDefault("description"));
        if (data is not null || names is not null) model.Trained = new TrainedOn(data, names);  // what a re-export describes
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
            foreach (var head in model.modules().OfType<DetectionHead>())
            {
                head.ScoreFunction = MlasLogistic.Logistic;
                head.Dfl.SoftmaxFunction = MlasSoftmax.Softmax;
            }
        }
        return new OnnxImportResult(model, scale, nc, convs.Count(c => c.Quantized), convs.Count, metadata,
            emulateQuantization ? quantizedKeys.Count : 0);
    }

    /// <summary>
    /// The configs to try, in order: the family and scale the <c>description</c> names (Ultralytics' "YOLO11n", Osprey's
    /// "YOLOv8n") first, then that family's other scales; without a recognised description every scale of YOLOv8, then
    /// of YOLO11 (the rows must all be registered: a family whose head is not yet known is skipped).
    /// </summary>
    private static List<(ModelConfig Base, string Scale)> Candidates(string? description, ModelConfig? given,
        ModuleRegistry registry, out string families)
    {
        var described = ModelFamilyNames.FromDescription(description);
        ModelConfig? named = given;
        if (named is null && described is { } d)
        {
            try
            {
                named = ModelConfig.Load(d.ConfigName);
            }
            catch (FileNotFoundException)
            {
                named = null; // a family Osprey does not ship: try the known ones
            }
        }
        var bases = named is not null ? new[] { named } : new[] { ModelConfig.Load("yolov8.yaml"), ModelConfig.Load("yolo11.yaml") };
        var unknown = bases.SelectMany(b => b.Layers).Select(row => row.Module).Where(m => !registry.TryGet(m, out _, out _))
            .Distinct().ToArray();
        if (named is not null && unknown.Length > 0)
            throw new InvalidDataException($"{named.Source}: unknown module '{string.Join("', '", unknown)}' (known: {string.Join(", ", registry.Names)}).");
        bases = bases.Where(b => b.Layers.All(row => registry.TryGet(row.Module, out _, out _))).ToArray();
        families = string.Join(" or ", bases.Select(b => ModelFamilyNames.Of(b)));
        var list = new List<(ModelConfig, string)>();
        foreach (var baseConfig in bases)
        {
            var scales = ScaleCandidates(baseConfig).ToList();
            string? first = ReferenceEquals(baseConfig, given) ? given.Scale : described?.Scale;
            if (first is not null && scales.Remove(first)) scales.Insert(0, first);
            list.AddRange(scales.Select(scale => (baseConfig, scale)));
        }
        return list;
    }

    private static IEnumerable<string> ScaleCandidates(ModelConfig baseConfig)
    {
        if (baseConfig.Scale is null) return new[] { "" };
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

    private static int InferNc(GraphProto graph, IReadOnlyList<OnnxConv> convs, string path, IReadOnlyDictionary<string, string> metadata)
    {
        var output = graph.Output.FirstOrDefault() ?? throw new InvalidDataException($"{path}: the graph has no output.");
        var dims = output.Type?.TensorType?.Shape?.Dim;
        // An end-to-end export's output is (b, k, 6) detections: the classes come from the class convolution
        // (one2one_cv3.0.2) below.
        bool endToEnd = metadata.TryGetValue("end2end", out var e2e) && e2e == "True";
        if (!endToEnd && dims is { Count: 3 } && dims[1].HasDimValue && dims[1].DimValue > 4) return (int)dims[1].DimValue - 4;
        var classConv = convs.FirstOrDefault(c => c.Key is { } key && key.EndsWith("cv3.0.2", StringComparison.Ordinal))
            ?? throw new InvalidDataException($"{path}: cannot tell the number of classes (output '{output.Name}' has no static shape).");
        return (int)classConv.Weight.shape[0];
    }

    /// <summary>
    /// Copies every convolution into <paramref name="model"/> (the head's modules that an export leaves out,
    /// <see cref="DetectionHead.ExportsModule"/>, are left to <see cref="DetectionHead.AfterImport"/>); returns a problem or null.
    /// </summary>
    internal static string? TryLoad(DetectionModel model, IReadOnlyList<OnnxConv> convs, IDictionary<string, OnnxConv> quantizedKeys)
    {
        using var scope = NewDisposeScope();
        var state = model.state_dict();
        string head = $"model.{model.LayerCount - 1}.";
        // Targets: Conv blocks (prefix P: P.conv.weight + P.bn.*) and bare Conv2d (K.weight, K.bias), DFL excluded.
        var targets = new List<string>();
        foreach (var (name, module) in model.named_modules())
        {
            if (name.StartsWith(head, StringComparison.Ordinal) && !model.Head.ExportsModule(name[head.Length..])) continue;
            if (module is Conv) targets.Add(name + ".conv");
            else if (module is Conv2d && (!name.EndsWith(".conv", StringComparison.Ordinal) || name.EndsWith(".dfl.conv", StringComparison.Ordinal)))
                targets.Add(name);
        }
        bool IsBlock(string key) => state.ContainsKey(key[..^".conv".Length] + ".bn.weight") && key.EndsWith(".conv", StringComparison.Ordinal);

        var assignment = new Dictionary<string, OnnxConv>();
        var unnamed = new List<OnnxConv>();
        foreach (var conv in convs)
        {
            string? k = conv.Key;
            // Ultralytics' fused RepVGGDW replaces its Conv block `conv` by the bare Conv2d: `X.conv` is our `X.conv.conv`.
            if (k is not null && !targets.Contains(k) && targets.Contains(k + ".conv")) k += ".conv";
            if (k is not null && targets.Contains(k) && !assignment.ContainsKey(k)) assignment[k] = conv;
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
        var fusedAway = FusedBranches(model, assignment, remaining);
        remaining.RemoveAll(fusedAway.Contains);
        if (remaining.Count > 0) return $"{remaining.Count} modules got no ONNX weights ({string.Join(", ", remaining.Take(5))})";

        using var noGrad = no_grad();
        foreach (string key in fusedAway)
        {
            // A branch the export folded into its sibling: zero weights and an identity BN without bias add nothing.
            state[key + ".weight"].zero_();
            string bn = key[..^".conv".Length] + ".bn";
            state[bn + ".weight"].fill_(1.0);
            state[bn + ".bias"].zero_();
            state[bn + ".running_mean"].zero_();
            state[bn + ".running_var"].fill_(1.0 - Conv.BatchNormEps);
        }
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
        model.Head.AfterImport();
        return null;
    }

    /// <summary>The 3×3 branches (<c>X.conv1.conv</c>) of the model's RepVGGDW blocks that got no ONNX weights while
    /// their 7×7 sibling did: the export re-parameterised the block into the 7×7 (<see cref="RepVGGDW.Fuse"/>).</summary>
    private static HashSet<string> FusedBranches(DetectionModel model, IReadOnlyDictionary<string, OnnxConv> assignment,
        IReadOnlyList<string> remaining) =>
        model.named_modules().Where(m => m.module is RepVGGDW).Select(m => m.name)
            .Where(name => assignment.ContainsKey(name + ".conv.conv") && remaining.Contains(name + ".conv1.conv"))
            .Select(name => name + ".conv1.conv").ToHashSet(StringComparer.Ordinal);

    /// <summary>Invariant formatting helper for messages.</summary>
    internal static string Shape(Tensor t) => string.Join(", ", t.shape.Select(d => d.ToString(CultureInfo.InvariantCulture)));
}
