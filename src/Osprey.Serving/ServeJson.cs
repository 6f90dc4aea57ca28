using System.Text.Encodings.Web;
using System.Text.Json;
using System.Text.Json.Serialization;
using Osprey.Inference;

namespace Osprey.Serving;

/// <summary>
/// The JSON the server answers with. Detections are laid out as Ultralytics' <c>Results.summary()</c> lays them out
/// (<c>name</c>, <c>class</c>, <c>confidence</c>, <c>box</c> with <c>x1 y1 x2 y2</c> in pixels, rounded to 5 decimals);
/// every answer names the model version that made it.
/// </summary>
public static class ServeJson
{
    /// <summary>Serializer settings of every answer (snake_case names, no indentation, quotes and × written as they are).</summary>
    public static JsonSerializerOptions Options { get; } = new()
    {
        Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping,     // JSON for programs, never inlined into HTML
        PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower,
        DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull,
    };

    /// <summary>Ultralytics' rounding of summary values: 5 decimals.</summary>
    public static double Round(float value) => Math.Round(value, 5, MidpointRounding.ToEven);

    /// <summary><c>POST /v1/detect</c>'s answer for one result.</summary>
    public static DetectResponse Detect(InferenceResult result) => new(
        new ModelRef(result.Model.Version, result.Model.Path),
        new ImageSize(result.Prediction.Width, result.Prediction.Height),
        result.Prediction.Detections.Select(Summary).ToArray(),
        new Speed(result.QueueWait.TotalMilliseconds, result.Inference.TotalMilliseconds, result.BatchSize));

    /// <summary>One detection as <c>Results.summary()</c> writes it.</summary>
    public static DetectionJson Summary(Detection d) =>
        new(d.ClassName, d.ClassId, Round(d.Confidence), new BoxJson(Round(d.Box.X1), Round(d.Box.Y1), Round(d.Box.X2), Round(d.Box.Y2)));

    /// <summary>A model's full description (<c>GET /v1/models</c>, <c>POST /v1/models</c>).</summary>
    public static ModelJson Model(ModelInfo info) =>
        new(info.Version, info.Path, info.Backend, info.OnnxExport, info.LoadedAt, info.ImageSize, info.Names.Count, info.Names);
}

/// <summary><c>{"model", "image", "detections", "speed"}</c>.</summary>
public sealed record DetectResponse(ModelRef Model, ImageSize Image, IReadOnlyList<DetectionJson> Detections, Speed Speed);

/// <summary>The version that answered and its path.</summary>
public sealed record ModelRef(int Version, string Path);

/// <summary>The image's size in pixels.</summary>
public sealed record ImageSize(int Width, int Height);

/// <summary>A detection: class name, class id, confidence, box.</summary>
public sealed record DetectionJson(
    string Name,
    [property: JsonPropertyName("class")] int Class,
    double Confidence,
    BoxJson Box);

/// <summary>xyxy corners in the image's pixels.</summary>
public sealed record BoxJson(double X1, double Y1, double X2, double Y2);

/// <summary>Milliseconds in the queue and of the batch's prediction, and the batch's size.</summary>
public sealed record Speed(double QueueMs, double InferenceMs, int BatchSize);

/// <summary>A model: version, path, backend (and the ONNX export it runs, when the server made one), since when, input size, class count and names.</summary>
public sealed record ModelJson(int Version, string Path, string Backend, string? OnnxExport, DateTimeOffset LoadedAt, int Imgsz, int Classes,
    IReadOnlyList<string> Names);

/// <summary><c>{"error": "…"}</c>: what went wrong, naming the problem.</summary>
public sealed record ErrorJson(string Error);

/// <summary><c>POST /v1/models</c>'s body: <c>{"model": "path"}</c>.</summary>
public sealed record LoadRequest(string? Model);
