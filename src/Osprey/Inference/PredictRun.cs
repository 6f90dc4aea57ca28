using System.Globalization;
using System.Text.Json;
using OpenCvSharp;
using Osprey.Config;
using Osprey.Data;
using Osprey.Runtime;

namespace Osprey.Inference;

/// <summary>What <c>osprey predict</c> produced.</summary>
/// <param name="RunDirectory">runs/detect/predictN.</param>
/// <param name="Images">Images and video frames processed.</param>
/// <param name="Detections">Detections in all of them.</param>
/// <param name="MillisecondsPerImage">Mean letterbox + model + NMS time.</param>
/// <param name="Lines">One summary line per image or video (path: counts per class).</param>
public sealed record PredictReport(string RunDirectory, int Images, int Detections, double MillisecondsPerImage, IReadOnlyList<string> Lines);

/// <summary>One entry of predictions.json.</summary>
public sealed record PredictionRecord(string image, int class_id, string name, float conf, float[] xyxy);

/// <summary>
/// <c>osprey predict model=… source=…</c>: an image, a folder, a glob (<c>dir/*.jpg</c>), a video file, a stream URL
/// (rtsp://, http(s)://, via OpenCV's VideoCapture) or a <c>.streams</c> text file of URLs, one a line. Annotated
/// images (and videos, as .mp4 / mp4v) go to runs/detect/predictN; <c>save_txt</c> writes labels/&lt;stem&gt;.txt
/// (<c>cls cx cy w h [conf]</c>, normalised; video frames as &lt;stem&gt;_&lt;frame&gt;.txt); <c>save_json</c> writes
/// predictions.json ([{image, class_id, name, conf, xyxy}], original pixels).
/// </summary>
public static class PredictRun
{
    private static readonly HashSet<string> VideoExtensions = new(StringComparer.OrdinalIgnoreCase)
        { ".mp4", ".avi", ".mov", ".mkv", ".m4v", ".mpg", ".mpeg", ".wmv", ".webm", ".gif", ".ts", ".asf" };

    /// <summary>Runs prediction as the arguments say; <paramref name="progress"/> gets one line per image.</summary>
    public static PredictReport Run(OspreyArgs args, Action<string>? progress = null)
    {
        string model = args.Model ?? throw new ArgumentsException("predict needs model=… (weights, YAML or .onnx)");
        string source = args.Source ?? throw new ArgumentsException("predict needs source=… (image, folder, glob, video, URL or .streams)");
        var options = Options(args);
        var device = DeviceRequest.Parse(args.Device).Resolve();
        var inputs = ResolveSource(source);
        using var predictor = Predictor.Load(model, options, device);
        string runDirectory = Training.RunDirectory.Create(args.Project, args.Name, "predict", args.ExistOk);
        string labels = Path.Combine(runDirectory, "labels");
        if (args.SaveTxt) Directory.CreateDirectory(labels);
        var records = new List<PredictionRecord>();
        var lines = new List<string>();
        int images = 0, detections = 0;
        var clock = System.Diagnostics.Stopwatch.StartNew();
        double predictMs = 0;

        void Handle(Mat frame, string name, string stem, VideoWriter? writer)
        {
            var start = clock.Elapsed;
            var prediction = predictor.Predict(frame, name);
            predictMs += (clock.Elapsed - start).TotalMilliseconds;
            images++;
            detections += prediction.Detections.Count;
            if (args.Save)
            {
                using var plotted = prediction.Plot(frame, args.LineWidth, args.ShowLabels, args.ShowConf);
                if (writer is not null) writer.Write(plotted);
                else Cv2.ImWrite(Path.Combine(runDirectory, Path.GetFileName(name)), plotted);
            }
            if (args.SaveTxt)
                File.WriteAllLines(Path.Combine(labels, stem + ".txt"), prediction.ToYoloLines(args.SaveConf));
            if (args.SaveJson)
                records.AddRange(prediction.Detections.Select(d => new PredictionRecord(name, d.ClassId, d.ClassName,
                    MathF.Round(d.Confidence, 5), new[] { d.Box.X1, d.Box.Y1, d.Box.X2, d.Box.Y2 }.Select(v => MathF.Round(v, 2)).ToArray())));
            string line = $"{name}: {prediction.Width}x{prediction.Height} {Summary(prediction)}";
            if (writer is null) lines.Add(line);
            progress?.Invoke(line);
        }

        foreach (var input in inputs)
        {
            if (input.IsVideo) RunVideo(input.Path, args, runDirectory, Handle, lines);
            else
            {
                using var image = Cv2.ImRead(input.Path, ImreadModes.Color);
                if (image.Empty()) throw new InvalidDataException($"{input.Path}: not an image OpenCV can read.");
                Handle(image, input.Path, Path.GetFileNameWithoutExtension(input.Path), null);
            }
        }
        if (args.SaveJson)
            Osprey.IO.AtomicFile.WriteAllText(Path.Combine(runDirectory, "predictions.json"),
                JsonSerializer.Serialize(records, new JsonSerializerOptions { WriteIndented = false }));
        return new PredictReport(runDirectory, images, detections, images == 0 ? 0 : predictMs / images, lines);
    }

    /// <summary>Predict options from the arguments (conf 0.25 unless given).</summary>
    public static PredictOptions Options(OspreyArgs args)
    {
        if (args.Imgsz < 32 || args.Imgsz % 32 != 0)
            throw new ArgumentsException($"imgsz={args.Imgsz}: must be a positive multiple of 32 (the largest stride)");
        int[]? classes = null;
        if (!string.IsNullOrWhiteSpace(args.Classes))
        {
            try
            {
                classes = args.Classes.Trim('[', ']', ' ').Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)
                    .Select(c => int.Parse(c, NumberStyles.Integer, CultureInfo.InvariantCulture)).ToArray();
            }
            catch (FormatException)
            {
                throw new ArgumentsException($"classes={args.Classes}: expected class indices like 0,2");
            }
        }
        return new PredictOptions
        {
            ImageSize = args.Imgsz, Confidence = (float)(args.Conf ?? 0.25), Iou = (float)args.Iou, MaxDetections = args.MaxDet,
            Classes = classes, Agnostic = args.AgnosticNms, Half = args.Half,
        };
    }

    /// <summary>A source item: an image or a video/stream.</summary>
    public sealed record SourceItem(string Path, bool IsVideo);

    /// <summary>Expands a source into images and videos/streams.</summary>
    public static IReadOnlyList<SourceItem> ResolveSource(string source)
    {
        if (source.Contains("://", StringComparison.Ordinal)) return new[] { new SourceItem(source, true) };
        if (source.EndsWith(".streams", StringComparison.OrdinalIgnoreCase) && File.Exists(source))
            return File.ReadAllLines(source).Select(l => l.Trim()).Where(l => l.Length > 0 && !l.StartsWith('#'))
                .Select(l => new SourceItem(l, true)).ToArray();
        IEnumerable<string> files;
        if (Directory.Exists(source))
            files = Directory.EnumerateFiles(source).Order(StringComparer.Ordinal);
        else if (source.IndexOfAny(new[] { '*', '?' }) >= 0)
        {
            string directory = Path.GetDirectoryName(source) is { Length: > 0 } d ? d : ".";
            string pattern = Path.GetFileName(source);
            if (!Directory.Exists(directory)) throw new FileNotFoundException($"source={source}: folder '{directory}' not found.");
            files = Directory.EnumerateFiles(directory, pattern).Order(StringComparer.Ordinal);
        }
        else if (File.Exists(source)) files = new[] { source };
        else throw new FileNotFoundException($"source={source}: no such file, folder, glob or URL.", source);
        var items = files.Where(f => ImageFiles.IsImage(f) || VideoExtensions.Contains(Path.GetExtension(f)))
            .Select(f => new SourceItem(f, VideoExtensions.Contains(Path.GetExtension(f)))).ToArray();
        if (items.Length == 0) throw new FileNotFoundException($"source={source}: no images or videos found.");
        return items;
    }

    private static void RunVideo(string path, OspreyArgs args, string runDirectory, Action<Mat, string, string, VideoWriter?> handle, List<string> lines)
    {
        using var capture = new VideoCapture(path);
        if (!capture.IsOpened()) throw new InvalidDataException($"{path}: OpenCV cannot open this video or stream.");
        double fps = capture.Fps > 0 ? capture.Fps : 30;
        int width = capture.FrameWidth, height = capture.FrameHeight;
        string stem = path.Contains("://", StringComparison.Ordinal) ? "stream" + Math.Abs(path.GetHashCode(StringComparison.Ordinal) % 1000) : Path.GetFileNameWithoutExtension(path);
        using var writer = args.Save
            ? new VideoWriter(Path.Combine(runDirectory, stem + ".mp4"), FourCC.MP4V, fps / Math.Max(1, args.VidStride), new Size(width, height))
            : null;
        using var frame = new Mat();
        int index = 0, processed = 0;
        while (capture.Read(frame) && !frame.Empty())
        {
            index++;
            if ((index - 1) % Math.Max(1, args.VidStride) != 0) continue;
            handle(frame, $"{path} frame {index}", $"{stem}_{index}", writer);
            processed++;
        }
        lines.Add($"{path}: {processed} frames → {Path.Combine(runDirectory, stem + ".mp4")}");
    }

    private static string Summary(Prediction prediction) => prediction.Detections.Count == 0 ? "(no detections)" :
        string.Join(", ", prediction.Detections.GroupBy(d => d.ClassName).Select(g => $"{g.Count()} {g.Key}{(g.Count() > 1 ? "s" : "")}"));
}
