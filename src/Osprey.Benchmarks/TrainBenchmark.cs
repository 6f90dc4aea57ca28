using System.Diagnostics;
using System.Globalization;
using System.Text;
using System.Text.Json;
using Osprey.Config;
using Osprey.Data;
using TorchSharp;

namespace Osprey.Benchmarks;

/// <summary>Osprey's end-to-end training throughput (<c>osprey bench train</c>).</summary>
/// <param name="Images">Images in the timed batches.</param>
/// <param name="Seconds">Wall time of the timed batches (device synchronised at both ends).</param>
/// <param name="Batches">Timed batches.</param>
/// <param name="Precision">What the run computed in (<see cref="PrecisionChoice"/>).</param>
/// <param name="Device">The device.</param>
/// <param name="Parameters">Model parameters.</param>
public sealed record TrainThroughput(int Images, double Seconds, int Batches, string Precision, string Device, long Parameters)
{
    /// <summary>Images per second.</summary>
    public double ImagesPerSecond => Images / Seconds;
}

/// <summary>The PyTorch model-step reference (<c>bench/train_reference.py</c>), or why it did not run.</summary>
/// <param name="ImagesPerSecond">Its images per second.</param>
/// <param name="Parameters">Its parameter count (must equal Osprey's: same architecture).</param>
/// <param name="Description">What it ran (torch version, dtype, layout, device).</param>
/// <param name="Error">Why it did not run, or null.</param>
public sealed record TrainReferenceResult(double ImagesPerSecond, long Parameters, string Description, string? Error);

/// <summary>
/// Times real training steps: the train loader on the dataset's JPEGs (copies of the train split made with symbolic
/// links until the run has enough batches in one epoch, so no epoch boundary falls inside the timing), mosaic and the
/// other default augmentations, the full v8 loss, backward, clipping, the optimiser and the EMA — the
/// <see cref="Trainer"/> itself, with <c>val=False save=False plots=False close_mosaic=0</c>. The first
/// <see cref="WarmupBatches"/> batches (cuDNN autotuning, allocator growth) are not timed.
/// </summary>
public static class TrainBenchmark
{
    /// <summary>Untimed batches at the start.</summary>
    public const int WarmupBatches = 3;

    /// <summary>Runs the timed training; <paramref name="timedImages"/> is rounded up to whole batches.</summary>
    /// <param name="args">model, data, imgsz, batch, device, amp, amp_dtype, workers, deterministic, seed, cache.</param>
    /// <param name="timedImages">Images to time.</param>
    /// <param name="progress">Progress lines.</param>
    public static TrainThroughput Run(OspreyArgs args, int timedImages, IProgress<string>? progress = null)
    {
        int batch = args.WholeBatch("bench train");
        if (batch < 1) throw new ArgumentsException("bench train needs batch ≥ 1");
        string data = args.Data ?? throw new ArgumentsException("bench train needs data=… (e.g. data=coco128.yaml)");
        int timedBatches = Math.Max(1, (timedImages + batch - 1) / batch);
        var config = DatasetCatalog.Resolve(data);
        string work = Path.Combine(Path.GetTempPath(), $"osprey-bench-train-{Environment.ProcessId}");
        try
        {
            int needed = (WarmupBatches + timedBatches + 1) * batch;
            string yaml = RepeatedDataset(config, work, needed, progress);
            var run = ArgsParser.Parse(new[] { ("data", yaml), ("epochs", "1"), ("val", "False"), ("save", "False"), ("plots", "False"),
                ("close_mosaic", "0"), ("project", work), ("name", "run"), ("exist_ok", "True"), ("resume", "False") }
                .Select(p => new KeyValuePair<string, string>(p.Item1, p.Item2)), args);

            var clock = new Stopwatch();
            int last = WarmupBatches + timedBatches - 1, images = 0;
            string precision = "", device = "";
            long parameters = 0;
            using var stop = new CancellationTokenSource();
            var trainer = new Trainer(run, e =>
            {
                switch (e)
                {
                    case TrainingStarted s:
                        (precision, device, parameters) = (s.Precision, s.Device, s.Parameters);
                        progress?.Report($"osprey: {s.Model}, {s.Train.Images} train images, batch {s.Batch}, imgsz {s.ImageSize}, {s.Workers} workers, {s.Precision}, {s.Device}");
                        break;
                    case BatchFinished b when b.Batch == WarmupBatches - 1:
                        Synchronize(device);
                        clock.Start();
                        break;
                    case BatchFinished b when b.Batch > WarmupBatches - 1 && b.Batch <= last:
                        images += batch;
                        if (b.Batch < last) break;
                        Synchronize(device);
                        clock.Stop();
                        stop.Cancel();                                      // skip the rest (and the final validation)
                        break;
                }
            });
            try { trainer.Train(stop.Token); }
            catch (OperationCanceledException) when (stop.IsCancellationRequested) { }
            if (!stop.IsCancellationRequested) throw new InvalidOperationException("bench train: the epoch ended before the timed batches did");
            return new TrainThroughput(images, clock.Elapsed.TotalSeconds, timedBatches, precision, device, parameters);
        }
        finally
        {
            try { if (Directory.Exists(work)) Directory.Delete(work, recursive: true); } catch (IOException) { }
        }
    }

    /// <summary>
    /// Runs <paramref name="script"/> with <paramref name="python"/>: the same architecture (by scale and class count),
    /// batch, image size, precision and memory layout, synthetic input, one model step (forward, Σ mean of squares,
    /// backward, SGD) timed over <paramref name="steps"/> steps after warm-up. A Python without torch, or any failure,
    /// comes back as <see cref="TrainReferenceResult.Error"/>.
    /// </summary>
    public static TrainReferenceResult RunReference(string script, string python, string scale, int nc, int imageSize, int batch,
        PrecisionChoice precision, bool cuda, bool deterministic, int steps)
    {
        var start = new ProcessStartInfo(python) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var arg in ReferenceArguments(script, scale, nc, imageSize, batch, precision, cuda, deterministic, steps)) start.ArgumentList.Add(arg);
        try
        {
            using var process = Process.Start(start) ?? throw new InvalidOperationException($"cannot start {python}");
            var stderr = process.StandardError.ReadToEndAsync();
            string stdout = process.StandardOutput.ReadToEnd();
            process.WaitForExit();
            string? line = stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries).LastOrDefault();
            if (line is null) return new(0, 0, "", $"{python} {Path.GetFileName(script)} printed nothing (exit {process.ExitCode}): {Tail(stderr.Result)}");
            using var json = JsonDocument.Parse(line);
            var root = json.RootElement;
            if (root.TryGetProperty("error", out var error)) return new(0, 0, "", error.GetString());
            if (process.ExitCode != 0) return new(0, 0, "", $"exit {process.ExitCode}: {Tail(stderr.Result)}");
            return new(root.GetProperty("img_per_s").GetDouble(), root.GetProperty("params").GetInt64(),
                root.GetProperty("description").GetString() ?? "", null);
        }
        catch (Exception e) when (e is InvalidOperationException or System.ComponentModel.Win32Exception or JsonException or KeyNotFoundException or IOException)
        {
            return new(0, 0, "", e.Message);
        }
    }

    /// <summary>The reference's command line (pure; tested).</summary>
    public static IReadOnlyList<string> ReferenceArguments(string script, string scale, int nc, int imageSize, int batch,
        PrecisionChoice precision, bool cuda, bool deterministic, int steps)
    {
        var list = new List<string>
        {
            script, "--scale", scale, "--nc", I(nc), "--imgsz", I(imageSize), "--batch", I(batch),
            "--dtype", precision.Policy.Name.Split(',')[0], "--device", cuda ? "cuda" : "cpu", "--steps", I(steps),
            "--warmup", I(WarmupBatches),
        };
        if (precision.Policy.ChannelsLast) list.Add("--channels-last");
        if (cuda) list.Add("--cudnn-benchmark");
        if (deterministic) list.Add("--deterministic");
        return list;
    }

    /// <summary>
    /// A dataset YAML under <paramref name="work"/> whose train split holds the original train images (and labels)
    /// as symbolic links, repeated until there are at least <paramref name="images"/>; val holds one image.
    /// </summary>
    public static string RepeatedDataset(DatasetConfig config, string work, int images, IProgress<string>? progress = null)
    {
        var source = DetectionDataset.Load(config, DatasetSplit.Train);
        if (source.Count == 0) throw new ArgumentsException($"{config.YamlPath}: the train split has no images");
        int copies = (images + source.Count - 1) / source.Count;
        progress?.Report($"{config.Name}: {source.Count} train images × {copies} (symbolic links) = {source.Count * copies}");
        string trainImages = Path.Combine(work, "images", "train"), trainLabels = Path.Combine(work, "labels", "train");
        string valImages = Path.Combine(work, "images", "val"), valLabels = Path.Combine(work, "labels", "val");
        foreach (string dir in new[] { trainImages, trainLabels, valImages, valLabels }) Directory.CreateDirectory(dir);
        for (int copy = 0; copy < copies; copy++)
            foreach (var image in source.Images)
                Link(image.ImagePath, trainImages, trainLabels, $"r{copy}_");
        Link(source.Images[0].ImagePath, valImages, valLabels, "");
        var yaml = new StringBuilder();
        yaml.AppendLine(CultureInfo.InvariantCulture, $"path: {Quote(work)}");
        yaml.AppendLine("train: images/train");
        yaml.AppendLine("val: images/val");
        yaml.AppendLine("names:");
        for (int i = 0; i < config.Names.Count; i++) yaml.AppendLine(CultureInfo.InvariantCulture, $"  {i}: {Quote(config.Names[i])}");
        string path = Path.Combine(work, "data.yaml");
        File.WriteAllText(path, yaml.ToString());
        return path;
    }

    static void Link(string image, string imageDir, string labelDir, string prefix)
    {
        string name = prefix + Path.GetFileName(image);
        File.CreateSymbolicLink(Path.Combine(imageDir, name), image);
        string label = ImageFiles.LabelPathFor(image);
        if (File.Exists(label)) File.CreateSymbolicLink(Path.Combine(labelDir, Path.ChangeExtension(name, ".txt")), label);
    }

    static void Synchronize(string device)
    {
        if (device.StartsWith("cuda", StringComparison.Ordinal)) torch.cuda.synchronize(torch.device(device));
    }

    static string Quote(string text) => "\"" + text.Replace("\\", "\\\\").Replace("\"", "\\\"") + "\"";

    static string I(int value) => value.ToString(CultureInfo.InvariantCulture);

    static string Tail(string text) => text.Trim().Split('\n').LastOrDefault() ?? "";
}
