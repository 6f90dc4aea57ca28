using System.Globalization;
using Google.Protobuf;
using Onnx;
using Osprey.Models;
using Osprey.Models.Families;
using Osprey.Runtime;

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

    /// <summary>Text of the <c>description</c> metadata; null = Ultralytics' "Ultralytics {family}{scale} model trained on
    /// {data}" (see <see cref="OnnxExporter.DefaultDescription"/>).</summary>
    public string? Description { get; init; }
}

/// <summary>
/// Writes a <see cref="DetectionModel"/> as an ONNX graph the way Ultralytics exports it: BN fused; input <c>images</c>
/// (B, 3, H, W) float RGB in [0, 1]; output <c>output0</c> (B, 4 + nc, A) = centre-xywh in input pixels and sigmoid
/// class scores (an end-to-end head: (B, 300, 6) detections, see <see cref="Models.Heads.V10Detect"/>); Ultralytics'
/// metadata_props. Each layer writes its own nodes (<see cref="IOnnxBlock"/>, beside its
/// forward: Conv(+bias) and Sigmoid·Mul for SiLU, Split/Concat for C2f, MaxPool for SPPF, Resize nearest, the head's
/// Reshape/Transpose/Softmax/Conv DFL with anchors and strides as constants, or computed from the feature-map shapes
/// when <see cref="OnnxExportOptions.Dynamic"/>); the exporter walks the layers in order.
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

        var graph = new OnnxGraph(options);
        if (options.Dynamic) graph.AddInput("images", "batch", 3L, "height", "width");
        else graph.AddInput("images", (long)options.Batch, 3L, (long)options.Height, (long)options.Width);
        var layers = model.Layers;
        var outputs = new string[layers.Count];
        string current = "images";
        for (int i = 0; i < layers.Count; i++)
        {
            string Input(int from) => from == -1 ? current : outputs[from < 0 ? i + from : from];
            current = graph.Emit(layers[i].Module, $"model.{i}", layers[i].From.Select(Input).ToArray());
            outputs[i] = current;
        }
        if (current != OnnxGraph.OutputName)
            throw new InvalidOperationException($"ONNX export: the head wrote '{current}', not '{OnnxGraph.OutputName}'.");
        var dims = model.Head.OnnxOutputShape(options.Dynamic, AnchorCount(model, options));
        graph.AddOutput(OnnxGraph.OutputName, dims.Prepend(options.Dynamic ? "batch" : (object)(long)options.Batch).ToArray());
        return graph.ToModel(Metadata(model, options));
    }

    private static long AnchorCount(DetectionModel model, OnnxExportOptions options) =>
        model.Strides.Sum(s => (long)(options.Height / s) * (long)(options.Width / s));

    // Ultralytics' metadata_props (exporter.py, self.metadata), in its order and with its values (str() of each): consumers
    // parse the family from the description and refuse other authors' files. Osprey's own version goes under osprey_version.
    private static IEnumerable<(string, string)> Metadata(DetectionModel model, OnnxExportOptions options)
    {
        yield return ("description", options.Description ?? DefaultDescription(model));
        yield return ("author", "Ultralytics");
        yield return ("date", PythonIsoFormat(DateTime.Now));
        yield return ("version", UltralyticsMetadata.Version);
        yield return ("license", "AGPL-3.0 License (https://ultralytics.com/license)");
        yield return ("docs", "https://docs.ultralytics.com");
        yield return ("stride", ((int)model.Strides.Max()).ToString(CultureInfo.InvariantCulture));
        yield return ("task", "detect");
        yield return ("batch", options.Batch.ToString(CultureInfo.InvariantCulture));
        yield return ("imgsz", UltralyticsMetadata.FormatInts(new[] { options.Height, options.Width }));
        yield return ("names", UltralyticsMetadata.FormatNames(model.Names));
        // {k: v for k, v in self.args if k in ('batch', 'dynamic', 'half', 'opset', 'simplify', 'nms')}, in default.yaml's
        // order; simplify is Ultralytics' default (True), nms is not offered.
        yield return ("args", $"{{'batch': {options.Batch}, 'half': {UltralyticsMetadata.Py(options.Half)}, 'dynamic': {UltralyticsMetadata.Py(options.Dynamic)}, " +
                              $"'simplify': True, 'opset': {options.Opset}, 'nms': False}}");
        yield return ("channels", model.Config.InputChannels.ToString(CultureInfo.InvariantCulture));
        if (model.Head.EndToEnd) yield return ("end2end", "True");                 // as Ultralytics 8.4 (8.3 writes no key)
        yield return ("osprey_version", TorchRuntime.OspreyVersion);
    }

    /// <summary>
    /// The <c>description</c> of an export, Ultralytics' text (<see cref="UltralyticsMetadata.Description"/>): the family and
    /// scale as its <c>pretty_name</c> (<c>YOLOv8n</c>, <c>YOLO11n</c>, <c>YOLOv10s</c>), then "trained on" the data the
    /// weights were trained on (<see cref="DetectionModel.Trained"/>): "Ultralytics YOLOv8n model trained on coco8.yaml".
    /// <see cref="OnnxImport"/> reads the family and scale back from it (and from Osprey's earlier "Osprey YOLOv8n model").
    /// </summary>
    public static string DefaultDescription(DetectionModel model) =>
        UltralyticsMetadata.Description($"{ModelFamilyNames.Of(model.Config)}{model.Scale ?? ""}", model.Trained?.Data);

    // Python's datetime.isoformat(): microseconds only when there are any.
    private static string PythonIsoFormat(DateTime time) => time.ToString(
        (time.Ticks % TimeSpan.TicksPerSecond) / 10 == 0 ? "yyyy-MM-ddTHH:mm:ss" : "yyyy-MM-ddTHH:mm:ss.ffffff", CultureInfo.InvariantCulture);
}
