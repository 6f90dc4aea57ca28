using System.Text.Json;
using OpenCvSharp;
using Osprey.Config;

namespace Osprey.Inference;

/// <summary>Where one predicted frame goes: its name in lines/JSON, its label-file stem, and a video or an image path.</summary>
internal sealed record Target(string Name, string LabelStem, LazyWriter? Writer, string? ImagePath);

/// <summary>An MJPG .avi writer opened at the first frame's size (Ultralytics' VideoWriter on Linux).</summary>
internal sealed class LazyWriter(string path, int fps, bool enabled) : IDisposable
{
    private VideoWriter? writer;

    public string Path => path;

    public void Write(Mat frame)
    {
        if (!enabled) return;
        if (writer is null)
        {
            writer = new VideoWriter(path, FourCC.MJPG, fps, new Size(frame.Width, frame.Height));
            if (!writer.IsOpened()) throw new IOException($"{path}: OpenCV cannot write an MJPG video here.");
        }
        writer.Write(frame);
    }

    public void Dispose() => writer?.Dispose();
}

/// <summary>The run folder's files and the running totals.</summary>
internal sealed class Outputs
{
    private readonly IDetector predictor;
    private readonly List<string> skipped = new();
    private readonly Action<string>? progress;
    private readonly string labels;
    private readonly List<PredictionRecord> records = new();
    private readonly List<long[]> shapes = new();
    private readonly System.Diagnostics.Stopwatch clock = System.Diagnostics.Stopwatch.StartNew();
    private double predictMs;
    private int images, detections;

    public Outputs(OspreyArgs args, IDetector predictor, string runDirectory, Action<string>? progress)
    {
        Args = args;
        RunDirectory = runDirectory;
        this.predictor = predictor;
        this.progress = progress;
        labels = Path.Combine(runDirectory, "labels");
        if (args.SaveTxt) Directory.CreateDirectory(labels);
    }

    public OspreyArgs Args { get; }

    public string RunDirectory { get; }

    public List<string> Lines { get; } = new();

    /// <summary>Predicts <paramref name="frames"/> in one batch and writes each one's outputs.</summary>
    public void Handle(IReadOnlyList<Mat> frames, IReadOnlyList<Target> targets)
    {
        var start = clock.Elapsed;
        shapes.Add(new long[] { frames.Count, 3, predictor.Options.ImageSize, predictor.Options.ImageSize });
        var predictions = predictor.Predict(frames, targets.Select(t => t.Name).ToArray());
        predictMs += (clock.Elapsed - start).TotalMilliseconds;
        for (int i = 0; i < frames.Count; i++)
        {
            var (prediction, target) = (predictions[i], targets[i]);
            images++;
            detections += prediction.Detections.Count;
            if (Args.Save)
            {
                using var plotted = prediction.Plot(frames[i], Args.LineWidth, Args.ShowLabels, Args.ShowConf);
                if (target.Writer is not null) target.Writer.Write(plotted);
                else Cv2.ImWrite(target.ImagePath!, plotted);
            }
            if (Args.SaveTxt && prediction.Detections.Count > 0) // Ultralytics writes no file for an image without detections
                File.AppendAllLines(Path.Combine(labels, target.LabelStem + ".txt"), prediction.ToYoloLines(Args.SaveConf));
            if (Args.SaveJson)
                records.AddRange(prediction.Detections.Select(d => new PredictionRecord(target.Name, d.ClassId, d.ClassName,
                    MathF.Round(d.Confidence, 5), new[] { d.Box.X1, d.Box.Y1, d.Box.X2, d.Box.Y2 }.Select(v => MathF.Round(v, 2)).ToArray())));
            string line = $"{target.Name}: {prediction.Width}x{prediction.Height} {Summary(prediction)}";
            if (target.Writer is null) Lines.Add(line);
            progress?.Invoke(line);
        }
    }

    private static string Summary(Prediction prediction) => prediction.Detections.Count == 0 ? "(no detections)" :
        string.Join(", ", prediction.Detections.GroupBy(d => d.ClassName).Select(g => $"{g.Count()} {g.Key}{(g.Count() > 1 ? "s" : "")}"));

    /// <summary>Records an input that could not be read and tells the progress callback (a warning line naming it).</summary>
    public void Skip(string path, string why)
    {
        skipped.Add($"{path}: {why}");
        progress?.Invoke($"WARNING ⚠️ Image Read Error {path}: {why}; skipped");
    }

    public PredictReport Finish()
    {
        if (Args.SaveJson)
            Osprey.IO.AtomicFile.WriteAllText(Path.Combine(RunDirectory, "predictions.json"),
                JsonSerializer.Serialize(records, new JsonSerializerOptions { WriteIndented = false }));
        return new PredictReport(RunDirectory, images, detections, images == 0 ? 0 : predictMs / images, Lines, shapes, skipped, predictor.Backend);
    }
}
