using System.Globalization;
using System.Net;
using System.Net.Sockets;
using OpenCvSharp;
using Osprey.Config;
using Osprey.Inference;
using Osprey.Tests.Data;
using Osprey.Tests.Sources;

namespace Osprey.Tests.Inference;

/// <summary>Small MJPG videos made from a demo image, a local HTTP server for them, and the reference predictions.</summary>
internal static class PredictVideoFiles
{
    private static readonly Lazy<string> Weights = new(() =>
    {
        // one copy shared by every test run (written atomically, with its sidecar first read back by the loader)
        string dir = Path.Combine(Path.GetTempPath(), "osprey-predict-tests");
        Directory.CreateDirectory(dir);
        string path = Path.Combine(dir, $"yolov8n-coco-{new FileInfo(ReferenceDetections.OnnxPath).Length}.safetensors");
        if (File.Exists(path) && File.Exists(Osprey.Models.ModelWeights.SidecarPath(path))) return path;
        using var model = Osprey.Models.ModelFactory.Create(ReferenceDetections.OnnxPath);
        Osprey.Models.ModelWeights.Save(model, path);
        return path;
    });

    private static readonly Dictionary<PredictOptions, Predictor> References = new();

    /// <summary>The imported COCO YOLOv8n (real detections on the demo images), saved once as safetensors (fast to load).</summary>
    public static string Model => Weights.Value;

    public const int ImageSize = 160;

    /// <summary>
    /// Writes <paramref name="frames"/> frames of zidane.jpg at <paramref name="width"/>x<paramref name="height"/>, each
    /// shifted <paramref name="step"/> more pixels to the right, as MJPG in .avi at <paramref name="fps"/>.
    /// </summary>
    public static void Write(string path, int frames, int width, int height, double fps, int step)
    {
        using var source = Cv2.ImRead(Path.Combine(DataTestFiles.SharedData, "images", "zidane.jpg"));
        using var small = source.Resize(new Size(width, height), interpolation: InterpolationFlags.Area);
        using var writer = new VideoWriter(path, FourCC.MJPG, fps, new Size(width, height));
        Assert.True(writer.IsOpened(), $"cannot write {path}");
        for (int k = 0; k < frames; k++)
        {
            using var shift = Mat.FromArray(new double[,] { { 1, 0, step * k }, { 0, 1, 0 } });
            using var frame = small.WarpAffine(shift, small.Size(), borderMode: BorderTypes.Constant, borderValue: new Scalar(40, 80, 120));
            writer.Write(frame);
        }
    }

    /// <summary>The frames of a video as OpenCV decodes them.</summary>
    public static List<Mat> Frames(string path)
    {
        using var capture = new VideoCapture(path);
        var frames = new List<Mat>();
        for (var frame = new Mat(); capture.Read(frame) && !frame.Empty(); frame = new Mat()) frames.Add(frame);
        return frames;
    }

    /// <summary>Predicts every frame on its own (batch 1) with a predictor built as PredictRun builds it.</summary>
    public static List<Prediction> PredictOneByOne(IEnumerable<Mat> frames, OspreyArgs args)
    {
        var options = PredictRun.Options(args);
        if (!References.TryGetValue(options, out var predictor)) References[options] = predictor = Predictor.Load(Model, options);
        return frames.Select(f => predictor.Predict(f)).ToList();
    }

    public static OspreyArgs Args(string project, string source, params (string Key, string Value)[] extra)
    {
        var pairs = new[] { ("model", Model), ("source", source), ("project", project),
            ("imgsz", ImageSize.ToString(CultureInfo.InvariantCulture)), ("device", "cpu") }.Concat(extra);
        return ArgsParser.Parse(pairs.Select(p => new KeyValuePair<string, string>(p.Item1, p.Item2)));
    }

    /// <summary>Asserts that a label file holds the prediction's YOLO lines (numbers within 1e-4); no file when it found nothing.</summary>
    public static void AssertLabels(string file, Prediction expected)
    {
        if (expected.Detections.Count == 0)
        {
            Assert.False(File.Exists(file), $"{file}: Ultralytics writes no label file for a frame without detections");
            return;
        }
        Assert.True(File.Exists(file), $"{file} missing");
        var actual = File.ReadAllLines(file);
        var wanted = expected.ToYoloLines(false).ToArray();
        Assert.Equal(wanted.Length, actual.Length);
        for (int i = 0; i < wanted.Length; i++)
        {
            var a = actual[i].Split(' ').Select(v => double.Parse(v, CultureInfo.InvariantCulture)).ToArray();
            var e = wanted[i].Split(' ').Select(v => double.Parse(v, CultureInfo.InvariantCulture)).ToArray();
            Assert.Equal(e[0], a[0]);
            for (int j = 1; j < e.Length; j++) Assert.True(Math.Abs(e[j] - a[j]) < 1e-4, $"{file} line {i}: {actual[i]} vs {wanted[i]}");
        }
    }

    /// <summary>(frames, width, height, fps) of a written video.</summary>
    public static (int Frames, int Width, int Height, double Fps) Describe(string path)
    {
        Assert.True(File.Exists(path), $"{path} missing");
        using var capture = new VideoCapture(path);
        Assert.True(capture.IsOpened(), $"{path} does not open");
        int frames = 0;
        using var frame = new Mat();
        while (capture.Read(frame) && !frame.Empty()) frames++;
        return (frames, capture.FrameWidth, capture.FrameHeight, capture.Fps);
    }

    public static int FreePort()
    {
        var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        int port = ((IPEndPoint)listener.LocalEndpoint).Port;
        listener.Stop();
        return port;
    }
}

/// <summary>Serves one file over HTTP on 127.0.0.1 (whole, or the byte range asked for), until disposed.</summary>
internal sealed class FileServer : IDisposable
{
    private readonly HttpTestServer server;
    private int requests;

    public FileServer(string file, string route)
    {
        var bytes = File.ReadAllBytes(file);
        // a client that closes the connection mid-file (FFmpeg seeks by reconnecting) ends only its request
        server = new HttpTestServer(async context =>
        {
            Interlocked.Increment(ref requests);
            long from = 0, to = bytes.Length - 1;
            if (context.Request.Headers["Range"] is { } range && range.StartsWith("bytes=", StringComparison.Ordinal))
            {
                var parts = range[6..].Split('-');
                from = long.Parse(parts[0], CultureInfo.InvariantCulture);
                if (parts[1].Length > 0) to = Math.Min(to, long.Parse(parts[1], CultureInfo.InvariantCulture));
                context.Response.StatusCode = 206;
                context.Response.AddHeader("Content-Range", $"bytes {from}-{to}/{bytes.Length}");
            }
            context.Response.AddHeader("Accept-Ranges", "bytes");
            context.Response.ContentType = "video/x-msvideo";
            context.Response.ContentLength64 = to - from + 1;
            await context.Response.OutputStream.WriteAsync(bytes.AsMemory((int)from, (int)(to - from + 1)));
            context.Response.Close();
        });
        Url = server.Root + route;
    }

    public string Url { get; }

    public int Requests => Volatile.Read(ref requests);

    public void Dispose() => server.Dispose();
}
