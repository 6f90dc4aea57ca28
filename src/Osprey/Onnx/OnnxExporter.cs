using System.Globalization;
using System.Reflection;
using Google.Protobuf;
using Onnx;
using Osprey.Models;
using Osprey.Models.Blocks;
using Osprey.Runtime;
using static TorchSharp.torch;

namespace Osprey.Onnx;

/// <summary>Settings of <see cref="OnnxExporter.Export"/> (Ultralytics' export arguments).</summary>
public sealed record OnnxExportOptions
{
    /// <summary>Input height and width (multiples of the largest stride); 640 × 640.</summary>
    public int Height { get; init; } = 640;

    /// <inheritdoc cref="Height"/>
    public int Width { get; init; } = 640;

    /// <summary>Batch size of a static export.</summary>
    public int Batch { get; init; } = 1;

    /// <summary>Symbolic batch, height and width (anchors computed in the graph).</summary>
    public bool Dynamic { get; init; }

    /// <summary>float16 weights, input and output.</summary>
    public bool Half { get; init; }

    /// <summary>ONNX opset (<see cref="OnnxExporter.MinOpset"/> … <see cref="OnnxExporter.MaxOpset"/>), 17.</summary>
    public int Opset { get; init; } = 17;

    /// <summary>Text of the <c>description</c> metadata; null = "Osprey YOLOv8{scale} model".</summary>
    public string? Description { get; init; }
}

/// <summary>
/// Writes a <see cref="DetectionModel"/> (YOLOv8 blocks) as an ONNX graph the way Ultralytics exports it: BN fused;
/// input <c>images</c> (B, 3, H, W) float RGB in [0, 1]; output <c>output0</c> (B, 4 + nc, A) = centre-xywh in input
/// pixels and sigmoid class scores; Ultralytics' metadata_props. Node by node: Conv(+bias), Sigmoid·Mul (SiLU),
/// Split/Concat (C2f), MaxPool (SPPF), Resize nearest, Reshape/Transpose/Softmax/Conv (DFL), anchors and strides as
/// constants, or computed from the feature-map shapes when <see cref="OnnxExportOptions.Dynamic"/>.
/// </summary>
public static class OnnxExporter
{
    /// <summary>Lowest opset written (Range, the attribute forms of Split/Unsqueeze and 2-D Softmax below 13).</summary>
    public const int MinOpset = 11;

    /// <summary>Highest opset written.</summary>
    public const int MaxOpset = 21;

    /// <summary>Ultralytics' warning when <c>half=True</c> is asked of an ONNX export on the CPU.</summary>
    public const string HalfOnCpuWarning = "half=True only compatible with GPU export, i.e. use device=0";

    /// <summary>
    /// The options an export on this device gets, as Ultralytics' exporter decides: <c>half=True</c> writes a float16
    /// graph only for a CUDA export; on the CPU it is set to False and <paramref name="warning"/> says so.
    /// </summary>
    public static OnnxExportOptions ForDevice(OnnxExportOptions options, bool cuda, out string? warning)
    {
        warning = null;
        if (!options.Half || cuda) return options;
        warning = HalfOnCpuWarning;
        return options with { Half = false };
    }

    /// <summary>Fuses <paramref name="model"/> (in place) and writes it to <paramref name="path"/>; returns the model proto.</summary>
    public static ModelProto Export(DetectionModel model, string path, OnnxExportOptions? options = null)
    {
        var proto = Build(model, options);
        var bytes = proto.ToByteArray();
        Osprey.IO.AtomicFile.WriteVia(path, temporary => File.WriteAllBytes(temporary, bytes));
        return proto;
    }

    /// <summary>Builds the ONNX model proto (fuses <paramref name="model"/> in place).</summary>
    public static ModelProto Build(DetectionModel model, OnnxExportOptions? options = null)
    {
        options ??= new OnnxExportOptions();
        if (options.Opset is < MinOpset or > MaxOpset)
            throw new ArgumentException($"opset={options.Opset}: Osprey exports ONNX opsets {MinOpset} … {MaxOpset}.");
        int maxStride = (int)model.Strides.Max();
        if (options.Height % maxStride != 0 || options.Width % maxStride != 0 || options.Height <= 0 || options.Width <= 0)
            throw new ArgumentException($"imgsz {options.Height}x{options.Width}: must be positive multiples of {maxStride}.");
        if (options.Batch < 1) throw new ArgumentException($"batch={options.Batch}: must be ≥ 1.");
        model.eval();
        if (!model.IsFused) model.Fuse();
        var writer = new GraphWriter(model, options);
        return writer.Write();
    }

    private sealed class GraphWriter
    {
        private readonly DetectionModel model;
        private readonly OnnxExportOptions options;
        private readonly Dictionary<string, Tensor> state;
        private readonly Dictionary<string, TorchSharp.torch.nn.Module> modules;
        private readonly GraphProto graph = new() { Name = "main_graph" };
        private readonly int floatType;
        private int counter;

        public GraphWriter(DetectionModel model, OnnxExportOptions options)
        {
            this.model = model;
            this.options = options;
            state = model.state_dict().ToDictionary(kv => kv.Key, kv => kv.Value);
            modules = model.named_modules().ToDictionary(kv => kv.name, kv => kv.module);
            floatType = options.Half ? OnnxTensors.DataType.Float16 : OnnxTensors.DataType.Float;
        }

        public ModelProto Write()
        {
            string batch = "batch", height = "height", width = "width";
            graph.Input.Add(ValueInfo("images", floatType, options.Dynamic
                ? new object[] { batch, 3L, height, width }
                : new object[] { (long)options.Batch, 3L, (long)options.Height, (long)options.Width }));

            var layers = model.Config.Layers;
            var outputs = new string[layers.Count];
            string current = "images";
            for (int i = 0; i < layers.Count; i++)
            {
                string prefix = $"model.{i}";
                var module = modules[prefix];
                string Input(int from) => from == -1 ? current : outputs[from < 0 ? i + from : from];
                var inputs = layers[i].From.Select(Input).ToArray();
                current = module switch
                {
                    Conv => ConvBlock(prefix, inputs[0], ConvStride(prefix)),
                    C2f => C2fBlock(prefix, inputs[0]),
                    SPPF => SppfBlock(prefix, inputs[0]),
                    Upsample => UpsampleNode(prefix, inputs[0]),
                    Concat => Node("Concat", $"/{prefix}/Concat", inputs, Attr("axis", 1)),
                    Detect detect => DetectHead(prefix, detect, inputs),
                    _ => throw new NotSupportedException($"ONNX export: layer {i} ({module.GetType().Name}) is not supported."),
                };
                outputs[i] = current;
            }
            int no = 4 + model.Nc;
            graph.Output.Add(ValueInfo("output0", floatType, options.Dynamic
                ? new object[] { batch, (long)no, "anchors" }
                : new object[] { (long)options.Batch, (long)no, AnchorCount() }));

            var proto = new ModelProto
            {
                IrVersion = IrVersion(options.Opset),
                ProducerName = "osprey",
                ProducerVersion = TorchRuntime.OspreyVersion,
                Graph = graph,
            };
            proto.OpsetImport.Add(new OperatorSetIdProto { Domain = "", Version = options.Opset });
            foreach (var (key, value) in Metadata()) proto.MetadataProps.Add(new StringStringEntryProto { Key = key, Value = value });
            return proto;
        }

        // The IR version each opset was released with (onnx/helper.py VERSION_TABLE).
        private static long IrVersion(int opset) => opset switch { 11 => 6, <= 14 => 7, <= 18 => 8, <= 20 => 9, _ => 10 };

        private IEnumerable<(string, string)> Metadata()
        {
            string scale = model.Scale ?? "";
            yield return ("description", options.Description ?? $"Osprey YOLOv8{scale} model");
            yield return ("author", "Osprey");
            yield return ("date", DateTime.Now.ToString("yyyy-MM-ddTHH:mm:ss.ffffff", CultureInfo.InvariantCulture));
            yield return ("version", TorchRuntime.OspreyVersion);
            yield return ("license", "AGPL-3.0 License (https://ultralytics.com/license)");
            yield return ("docs", "https://docs.ultralytics.com");
            yield return ("stride", ((int)model.Strides.Max()).ToString(CultureInfo.InvariantCulture));
            yield return ("task", "detect");
            yield return ("batch", options.Batch.ToString(CultureInfo.InvariantCulture));
            yield return ("imgsz", UltralyticsMetadata.FormatInts(new[] { options.Height, options.Width }));
            yield return ("names", UltralyticsMetadata.FormatNames(model.Names));
            yield return ("args", $"{{'batch': {options.Batch}, 'half': {Py(options.Half)}, 'dynamic': {Py(options.Dynamic)}, 'opset': {options.Opset}, 'nms': False}}");
            yield return ("channels", model.Config.InputChannels.ToString(CultureInfo.InvariantCulture));
        }

        private static string Py(bool value) => value ? "True" : "False";

        private long AnchorCount() => model.Strides.Sum(s => (long)(options.Height / s) * (long)(options.Width / s));

        private long ConvStride(string prefix)
        {
            var conv = (TorchSharp.Modules.Conv2d)modules[prefix + ".conv"];
            return conv.stride?.FirstOrDefault() ?? 1;
        }

        // ── blocks ────────────────────────────────────────────────────────────────────────────────────────────
        private string ConvBlock(string prefix, string input, long stride = 1, bool activation = true)
        {
            string scope = "/" + prefix.Replace('.', '/').Replace("model/", "model.", StringComparison.Ordinal);
            var weight = state[prefix + ".conv.weight"];
            var bias = state[prefix + ".conv.bias"];
            string y = ConvNode(scope + "/conv/Conv", input, prefix + ".conv", weight, bias, stride);
            if (!activation) return y;
            string sigmoid = Node("Sigmoid", scope + "/act/Sigmoid", new[] { y });
            return Node("Mul", scope + "/act/Mul", new[] { y, sigmoid });
        }

        private string ConvNode(string name, string input, string key, Tensor weight, Tensor? bias, long stride)
        {
            long k = weight.shape[2];
            var inputs = new List<string> { input, Initializer(key + ".weight", weight) };
            if (bias is not null) inputs.Add(Initializer(key + ".bias", bias));
            return Node("Conv", name, inputs.ToArray(),
                Attr("dilations", 1, 1), Attr("group", 1), Attr("kernel_shape", k, k),
                Attr("pads", k / 2, k / 2, k / 2, k / 2), Attr("strides", stride, stride));
        }

        private string C2fBlock(string prefix, string input)
        {
            var block = (C2f)modules[prefix];
            long c = block.Hidden;
            string y = ConvBlock(prefix + ".cv1", input);
            var split = Split($"/{prefix}/Split", y, c, c);
            var parts = new List<string>(split);
            for (int j = 0; modules.ContainsKey($"{prefix}.m.{j}"); j++)
            {
                string m = $"{prefix}.m.{j}";
                string x = parts[^1];
                string h = ConvBlock(m + ".cv2", ConvBlock(m + ".cv1", x));
                if (Shortcut((Bottleneck)modules[m])) h = Node("Add", $"/{m}/Add", new[] { x, h });
                parts.Add(h);
            }
            string cat = Node("Concat", $"/{prefix}/Concat", parts.ToArray(), Attr("axis", 1));
            return ConvBlock(prefix + ".cv2", cat);
        }

        private static bool Shortcut(Bottleneck bottleneck) =>
            (bool)(typeof(Bottleneck).GetField("add", BindingFlags.NonPublic | BindingFlags.Instance)?.GetValue(bottleneck)
                   ?? throw new InvalidOperationException("Bottleneck.add not found"));

        private string SppfBlock(string prefix, string input)
        {
            string y0 = ConvBlock(prefix + ".cv1", input);
            long k = 5; // SPPF kernel (Ultralytics' YAML: [1024, 5])
            var row = model.Config.Layers[int.Parse(prefix["model.".Length..], CultureInfo.InvariantCulture)];
            if (row.Args.Count > 1 && long.TryParse(row.Args[1]?.ToString(), NumberStyles.Integer, CultureInfo.InvariantCulture, out long parsed)) k = parsed;
            var ys = new List<string> { y0 };
            for (int j = 0; j < 3; j++)
                ys.Add(Node("MaxPool", $"/{prefix}/m{(j == 0 ? "" : "_" + j)}/MaxPool", new[] { ys[^1] },
                    Attr("ceil_mode", 0), Attr("dilations", 1, 1), Attr("kernel_shape", k, k), Attr("pads", k / 2, k / 2, k / 2, k / 2), Attr("strides", 1, 1)));
            return ConvBlock(prefix + ".cv2", Node("Concat", $"/{prefix}/Concat", ys.ToArray(), Attr("axis", 1)));
        }

        private string UpsampleNode(string prefix, string input)
        {
            string scales = Initializer($"/{prefix}/scales", tensor(new float[] { 1, 1, 2, 2 }), forceFloat: true);
            // roi is optional from opset 13; opsets 11 and 12 need the input (empty: unused by "asymmetric")
            string roi = options.Opset >= 13 ? "" : Initializer($"/{prefix}/roi", zeros(0), forceFloat: true);
            return Node("Resize", $"/{prefix}/Resize", new[] { input, roi, scales },
                Attr("coordinate_transformation_mode", "asymmetric"), Attr("cubic_coeff_a", -0.75f), Attr("mode", "nearest"),
                Attr("nearest_mode", "floor"));
        }

        private string DetectHead(string prefix, Detect detect, string[] features)
        {
            int no = detect.OutputsPerAnchor, regMax = detect.RegMax, nc = detect.Nc;
            var flat = new List<string>();
            for (int i = 0; i < detect.Levels; i++)
            {
                string Branch(string name)
                {
                    string b = ConvBlock($"{prefix}.{name}.{i}.0", features[i]);
                    b = ConvBlock($"{prefix}.{name}.{i}.1", b);
                    string key = $"{prefix}.{name}.{i}.2";
                    return ConvNode($"/{prefix}/{name}.{i}/{name}.{i}.2/Conv", b, key, state[key + ".weight"], state[key + ".bias"], 1);
                }
                string level = Node("Concat", $"/{prefix}/Concat{(i == 0 ? "" : "_" + i)}", new[] { Branch("cv2"), Branch("cv3") }, Attr("axis", 1));
                flat.Add(Node("Reshape", $"/{prefix}/Reshape{(i == 0 ? "" : "_" + i)}", new[] { level, Int64s(0, no, -1) }));
            }
            string all = Node("Concat", $"/{prefix}/Concat_3", flat.ToArray(), Attr("axis", 2));                   // (b, no, A)
            var parts = Split($"/{prefix}/Split", all, 4L * regMax, nc);
            // DFL: (b, 64, A) → (b, 4, 16, A) → (b, 16, 4, A) → softmax over bins → 1×1 conv with arange → (b, 4, A)
            string d = Node("Reshape", $"/{prefix}/dfl/Reshape", new[] { parts[0], Int64s(0, 4, regMax, -1) });
            d = Node("Transpose", $"/{prefix}/dfl/Transpose", new[] { d }, Attr("perm", 0, 2, 1, 3));
            d = SoftmaxAxis1($"/{prefix}/dfl/Softmax", d);
            d = ConvNode($"/{prefix}/dfl/conv/Conv", d, $"{prefix}.dfl.conv", state[$"{prefix}.dfl.conv.weight"], null, 1);
            d = Node("Reshape", $"/{prefix}/dfl/Reshape_1", new[] { d, Int64s(0, 4, -1) });                          // (b, 4, A)
            var (anchors, strides) = options.Dynamic ? DynamicAnchors(prefix, flat, features) : StaticAnchors(prefix);
            var ltrb = Split($"/{prefix}/Split_1", d, 2, 2);
            string x1y1 = Node("Sub", $"/{prefix}/Sub", new[] { anchors, ltrb[0] });
            string x2y2 = Node("Add", $"/{prefix}/Add", new[] { anchors, ltrb[1] });
            string sum = Node("Add", $"/{prefix}/Add_1", new[] { x1y1, x2y2 });
            string cxy = Node("Div", $"/{prefix}/Div", new[] { sum, Initializer($"/{prefix}/Constant_two", tensor(new float[] { 2f })) });
            string wh = Node("Sub", $"/{prefix}/Sub_1", new[] { x2y2, x1y1 });
            string box = Node("Concat", $"/{prefix}/Concat_4", new[] { cxy, wh }, Attr("axis", 1));
            box = Node("Mul", $"/{prefix}/Mul", new[] { box, strides });
            string cls = Node("Sigmoid", $"/{prefix}/Sigmoid", new[] { parts[1] });
            return Node("Concat", $"/{prefix}/Concat_5", new[] { box, cls }, Attr("axis", 1), output: "output0");
        }

        private (string Anchors, string Strides) StaticAnchors(string prefix)
        {
            using var scope = NewDisposeScope();
            var maps = model.Strides.Select(s => zeros(1, 1, (long)(options.Height / s), (long)(options.Width / s))).ToArray();
            var (points, strideTensor) = Anchors.Make(maps, model.Strides.ToArray());             // (A, 2), (A, 1)
            string anchors = Initializer($"/{prefix}/anchors", points.transpose(0, 1).unsqueeze(0)); // (1, 2, A)
            string strides = Initializer($"/{prefix}/strides", strideTensor.transpose(0, 1).unsqueeze(0)); // (1, 1, A)
            return (anchors, strides);
        }

        /// <summary>Anchors from the level maps' shapes: x = arange(w) + 0.5, y = arange(h) + 0.5, row-major.</summary>
        private (string Anchors, string Strides) DynamicAnchors(string prefix, List<string> flat, string[] features)
        {
            var points = new List<string>();
            var strides = new List<string>();
            string zero = Int64Scalar($"/{prefix}/anchor_zero", 0), one = Int64Scalar($"/{prefix}/anchor_one", 1);
            string half = Initializer($"/{prefix}/anchor_half", tensor(0.5f));
            string nothing = Initializer($"/{prefix}/anchor_zero_f", tensor(0f));
            for (int i = 0; i < features.Length; i++)
            {
                string p = $"/{prefix}/anchors{i}";
                string shape = Node("Shape", p + "/Shape", new[] { features[i] });
                string h = Node("Gather", p + "/Gather_h", new[] { shape, Int64Scalar(p + "/two", 2) }, Attr("axis", 0));
                string w = Node("Gather", p + "/Gather_w", new[] { shape, Int64Scalar(p + "/three", 3) }, Attr("axis", 0));
                string sx = Node("Add", p + "/sx", new[] { CastFloat(p + "/cast_x", Node("Range", p + "/Range_x", new[] { zero, w, one })), half }); // (w)
                string sy = Node("Add", p + "/sy", new[] { CastFloat(p + "/cast_y", Node("Range", p + "/Range_y", new[] { zero, h, one })), half }); // (h)
                string row = Unsqueeze(p + "/row", sx, 0);     // (1, w)
                string col = Unsqueeze(p + "/col", sy, 1);     // (h, 1)
                string gx = Node("Add", p + "/gx", new[] { row, Node("Mul", p + "/col0", new[] { col, nothing }) }); // (h, w)
                string gy = Node("Add", p + "/gy", new[] { col, Node("Mul", p + "/row0", new[] { row, nothing }) }); // (h, w)
                string fx = Node("Reshape", p + "/fx", new[] { gx, Int64s(1, -1) });      // (1, hw)
                string fy = Node("Reshape", p + "/fy", new[] { gy, Int64s(1, -1) });
                points.Add(Node("Concat", p + "/xy", new[] { fx, fy }, Attr("axis", 0)));  // (2, hw)
                string stride = Initializer(p + "/stride", tensor(model.Strides[i]));
                strides.Add(Node("Add", p + "/s", new[] { Node("Mul", p + "/fx0", new[] { fx, nothing }), stride })); // (1, hw)
            }
            string anchors = Unsqueeze($"/{prefix}/anchors", Node("Concat", $"/{prefix}/anchors_cat", points.ToArray(), Attr("axis", 1)), 0);
            string strideRow = Unsqueeze($"/{prefix}/strides", Node("Concat", $"/{prefix}/strides_cat", strides.ToArray(), Attr("axis", 1)), 0);
            return (anchors, strideRow);
        }

        // ── opset-dependent forms ─────────────────────────────────────────────────────────────────────────────
        // Split along axis 1 into the given sizes: the sizes are an input from opset 13, an attribute before.
        private string[] Split(string name, string input, params long[] sizes) => options.Opset >= 13
            ? Node2("Split", name, new[] { input, Int64s(sizes) }, sizes.Length, Attr("axis", 1))
            : Node2("Split", name, new[] { input }, sizes.Length, Attr("axis", 1), Attr("split", sizes));

        // Unsqueeze at one axis: axes are an input from opset 13, an attribute before.
        private string Unsqueeze(string name, string input, long axis) => options.Opset >= 13
            ? Node("Unsqueeze", name, new[] { input, Int64s(axis) })
            : Node("Unsqueeze", name, new[] { input }, Attr("axes", axis));

        // Softmax over axis 1 of a 4-D tensor. Before opset 13 Softmax flattens the input to 2-D at `axis`
        // (normalising over every dimension from it on), so the bins are moved last, normalised, and moved back.
        private string SoftmaxAxis1(string name, string input)
        {
            if (options.Opset >= 13) return Node("Softmax", name, new[] { input }, Attr("axis", 1));
            string last = Node("Transpose", name + "/to_last", new[] { input }, Attr("perm", 0, 2, 3, 1));       // (b, 4, A, 16)
            string soft = Node("Softmax", name, new[] { last }, Attr("axis", 3));
            return Node("Transpose", name + "/back", new[] { soft }, Attr("perm", 0, 3, 1, 2));                  // (b, 16, 4, A)
        }

        private string CastFloat(string name, string input) => Node("Cast", name, new[] { input }, Attr("to", floatType));

        // ── proto helpers ─────────────────────────────────────────────────────────────────────────────────────
        private string Node(string op, string name, string[] inputs, params AttributeProto[] attributes) =>
            Node(op, name, inputs, null, attributes);

        private string Node(string op, string name, string[] inputs, string? output, params AttributeProto[] attributes)
        {
            var node = new NodeProto { OpType = op, Name = name };
            node.Input.AddRange(inputs);
            string result = output ?? name + "_output_0";
            node.Output.Add(result);
            node.Attribute.AddRange(attributes);
            graph.Node.Add(node);
            return result;
        }

        private string Node(string op, string name, string[] inputs, AttributeProto a1, string output) => Node(op, name, inputs, output, a1);

        private string[] Node2(string op, string name, string[] inputs, int outputs, params AttributeProto[] attributes)
        {
            var node = new NodeProto { OpType = op, Name = name };
            node.Input.AddRange(inputs);
            var names = Enumerable.Range(0, outputs).Select(i => $"{name}_output_{i}").ToArray();
            node.Output.AddRange(names);
            node.Attribute.AddRange(attributes);
            graph.Node.Add(node);
            return names;
        }

        private string Initializer(string name, Tensor value, bool forceFloat = false)
        {
            if (graph.Initializer.Any(t => t.Name == name)) name += "_" + counter++;
            graph.Initializer.Add(options.Half && !forceFloat ? OnnxTensors.FromHalf(name, value) : OnnxTensors.FromFloat(name, value));
            return name;
        }

        private string Int64s(params long[] values)
        {
            string name = $"const_i64_{counter++}";
            graph.Initializer.Add(OnnxTensors.FromInt64(name, values));
            return name;
        }

        private string Int64Scalar(string name, long value)
        {
            graph.Initializer.Add(OnnxTensors.FromInt64(name, new[] { value }, Array.Empty<long>()));
            return name;
        }

        private static ValueInfoProto ValueInfo(string name, int elemType, object[] dims)
        {
            var shape = new TensorShapeProto();
            foreach (var d in dims)
                shape.Dim.Add(d is string s ? new TensorShapeProto.Types.Dimension { DimParam = s } : new TensorShapeProto.Types.Dimension { DimValue = (long)d });
            return new ValueInfoProto
            {
                Name = name,
                Type = new TypeProto { TensorType = new TypeProto.Types.Tensor { ElemType = elemType, Shape = shape } },
            };
        }

        private static AttributeProto Attr(string name, params long[] values)
        {
            if (values.Length == 1 && name is "axis" or "group" or "ceil_mode" or "to")
                return new AttributeProto { Name = name, Type = AttributeProto.Types.AttributeType.Int, I = values[0] };
            var a = new AttributeProto { Name = name, Type = AttributeProto.Types.AttributeType.Ints };
            a.Ints.AddRange(values);
            return a;
        }

        private static AttributeProto Attr(string name, string value) =>
            new() { Name = name, Type = AttributeProto.Types.AttributeType.String, S = ByteString.CopyFromUtf8(value) };

        private static AttributeProto Attr(string name, float value) =>
            new() { Name = name, Type = AttributeProto.Types.AttributeType.Float, F = value };
    }
}
