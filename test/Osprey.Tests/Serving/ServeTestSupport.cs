using System.Globalization;
using System.Net.Http.Headers;
using System.Text.Json;
using System.Text.RegularExpressions;
using OpenCvSharp;
using Osprey.Inference;
using Osprey.Models;
using Osprey.Serving;
using Osprey.Tests.Models;
using static TorchSharp.torch;

namespace Osprey.Tests.Serving;

/// <summary>Models, images, a started server with a client, and metric parsing for the serving tests.</summary>
internal static class ServeTestSupport
{
    /// <summary>Tiny-model predict settings: imgsz 64, every box above confidence 0, the best 3.</summary>
    public static PredictOptions TinyOptions => new() { ImageSize = 64, Confidence = 0f, MaxDetections = 3 };

    /// <summary>
    /// Writes a tiny YOLOv8-layout model (random weights from <paramref name="seed"/>, class biases set to
    /// 0.5 · (seed − 1) so confidences sit near sigmoid of it: seeds 1 and 2 answer about 0.57 and 0.67, far apart beyond the
    /// JSON's 5 decimals) as <c>name.safetensors</c> with its sidecar <c>name.yaml</c>; returns the weights path.
    /// </summary>
    public static string WriteTinyModel(string dir, string name, int seed, int nc = 80)
    {
        manual_seed(seed);
        using var model = TestModels.Tiny(nc);
        TestModels.RandomiseBatchNorms(model, seed);
        using (no_grad())
        {
            foreach (var (key, tensor) in model.state_dict())
                if (Regex.IsMatch(key, @"^model\.22\.cv3\.\d+\.2\.bias$")) tensor.fill_(0.5 * (seed - 1));
        }
        string path = Path.Combine(dir, name + ".safetensors");
        ModelWeights.Save(model, path);
        return path;
    }

    /// <summary>A JPEG of w×h with a few coloured rectangles (a different picture per seed).</summary>
    public static byte[] Jpeg(int width, int height, int seed = 1)
    {
        using var image = Picture(width, height, seed);
        return image.ImEncode(".jpg");
    }

    /// <summary>A BGR picture of w×h with a few coloured rectangles.</summary>
    public static Mat Picture(int width, int height, int seed = 1)
    {
        var rng = new Random(seed);
        var image = new Mat(height, width, MatType.CV_8UC3, new Scalar(40, 90, 140));
        for (int i = 0; i < 4; i++)
        {
            int x = rng.Next(width / 2), y = rng.Next(height / 2);
            Cv2.Rectangle(image, new Rect(x, y, 1 + rng.Next(width - x), 1 + rng.Next(height - y)),
                new Scalar(rng.Next(256), rng.Next(256), rng.Next(256)), -1);
        }
        return image;
    }

    /// <summary>A POST body of raw bytes with the given Content-Type (none when null).</summary>
    public static ByteArrayContent Body(byte[] bytes, string? contentType = "image/jpeg")
    {
        var content = new ByteArrayContent(bytes);
        if (contentType is not null) content.Headers.ContentType = MediaTypeHeaderValue.Parse(contentType);
        return content;
    }

    /// <summary>The value of a sample in Prometheus text, e.g. <c>osprey_requests_total{route="/v1/detect",code="200"}</c>; 0 when absent.</summary>
    public static double Metric(string text, string name, params (string Label, string Value)[] labels)
    {
        foreach (string line in text.Split('\n'))
        {
            if (!line.StartsWith(name, StringComparison.Ordinal) || line.StartsWith('#')) continue;
            string rest = line[name.Length..];
            if (rest.Length == 0 || (rest[0] != ' ' && rest[0] != '{')) continue;
            if (!labels.All(l => rest.Contains($"{l.Label}=\"{l.Value}\"", StringComparison.Ordinal))) continue;
            return double.Parse(rest[(rest.LastIndexOf(' ') + 1)..], CultureInfo.InvariantCulture);
        }
        return 0;
    }

    /// <summary>Parses a JSON answer.</summary>
    public static async Task<JsonElement> JsonOf(HttpResponseMessage response)
    {
        using var doc = JsonDocument.Parse(await response.Content.ReadAsStringAsync());
        return doc.RootElement.Clone();
    }
}

/// <summary>A detector that forwards to another, optionally sleeping per batch, and records its disposal.</summary>
internal sealed class WrappedDetector(IDetector inner, TimeSpan delayPerBatch = default) : IDetector
{
    int disposed;

    public bool IsDisposed => Volatile.Read(ref disposed) != 0;
    public string Backend => inner.Backend;
    public IReadOnlyList<string> Names => inner.Names;
    public PredictOptions Options => inner.Options;

    public IReadOnlyList<Prediction> Predict(IReadOnlyList<Mat> bgrImages, IReadOnlyList<string>? sources = null)
    {
        if (IsDisposed) throw new ObjectDisposedException("WrappedDetector", "predict after dispose");
        if (delayPerBatch > TimeSpan.Zero) Thread.Sleep(delayPerBatch);
        return inner.Predict(bgrImages, sources);
    }

    public void Dispose()
    {
        if (Interlocked.Exchange(ref disposed, 1) == 0) inner.Dispose();
    }
}

/// <summary>A started <see cref="OspreyServer"/> with an HttpClient on its URL and the events it raised.</summary>
internal sealed class ServerScope : IAsyncDisposable
{
    readonly List<ServeEvent> events = new();

    ServerScope() { }

    public OspreyServer Server { get; private set; } = null!;
    public HttpClient Client { get; private set; } = null!;

    public IReadOnlyList<ServeEvent> Events
    {
        get { lock (events) return events.ToArray(); }
    }

    public static async Task<ServerScope> StartAsync(ServeOptions options, DetectorFactory? factory = null)
    {
        var scope = new ServerScope();
        scope.Server = await OspreyServer.StartAsync(options with { Host = "127.0.0.1", Port = 0 }, e =>
        {
            lock (scope.events) scope.events.Add(e);
        }, factory);
        scope.Client = new HttpClient { BaseAddress = new Uri(scope.Server.Url), Timeout = TimeSpan.FromSeconds(60) };
        return scope;
    }

    public async Task<string> MetricsText() => await Client.GetStringAsync("/metrics");

    public async ValueTask DisposeAsync()
    {
        Client.Dispose();
        await Server.DisposeAsync();
    }
}
