using System.Diagnostics;
using System.Globalization;
using System.Text.Json;

namespace Osprey.Benchmarks;

/// <summary>Options of the data benchmark (training pipeline: mosaic, affine, HSV, flips, collate).</summary>
/// <param name="Data"><c>data=</c> string (a YAML or <c>shapes</c>).</param>
/// <param name="ImageSize">imgsz.</param>
/// <param name="Workers">Loader threads (= cores counted for "per core").</param>
/// <param name="Samples">Samples timed per mode (after one warm-up batch).</param>
/// <param name="BatchSize">Batch size.</param>
/// <param name="Seed">Seed.</param>
/// <param name="CacheDirectory">Folder for our caches (default <see cref="OspreyCacheDirectory.Root"/>).</param>
/// <param name="MosaicBuffer">Ultralytics' mosaic buffer on both sides (<see cref="LoaderOptions.MosaicBuffer"/>,
/// <c>--buffer</c> of the reference); 0: uniform partners, every image decoded each time, on both sides.</param>
public sealed record DataBenchmarkOptions(string Data, int ImageSize = 640, int Workers = 2, int Samples = 512, int BatchSize = 16, long Seed = 0,
    string? CacheDirectory = null, int MosaicBuffer = 128);

/// <summary>Throughput of one pipeline run.</summary>
/// <param name="Pipeline">"osprey" or "reference".</param>
/// <param name="Mode">"jpeg" (decode every time) or "ram" (cache=ram).</param>
/// <param name="Samples">Samples timed.</param>
/// <param name="Seconds">Wall time.</param>
/// <param name="Cores">Cores it used (workers, or 1 for the single-threaded reference).</param>
/// <param name="CpuSeconds">CPU time of the whole process over the timed part (all threads), or 0 when unknown.</param>
/// <param name="Decodes">Images decoded from files during the timed part, or −1 when unknown.</param>
public sealed record DataThroughput(string Pipeline, string Mode, int Samples, double Seconds, int Cores, double CpuSeconds = 0, long Decodes = -1)
{
    /// <summary>Samples per second.</summary>
    public double SamplesPerSecond => Samples / Seconds;

    /// <summary>Samples per second per core.</summary>
    public double SamplesPerSecondPerCore => SamplesPerSecond / Cores;

    /// <summary>Samples per CPU-second (process CPU time, every thread counted), or null when unknown.</summary>
    public double? SamplesPerCpuSecond => CpuSeconds > 0 ? Samples / CpuSeconds : null;
}

/// <summary>Osprey against the Python/OpenCV reference, per mode.</summary>
/// <param name="Osprey">Osprey, JPEG then RAM.</param>
/// <param name="Reference">Reference, JPEG then RAM (empty when it could not run).</param>
/// <param name="ReferenceError">Why the reference did not run, or null.</param>
public sealed record DataBenchmarkComparison(IReadOnlyList<DataThroughput> Osprey, IReadOnlyList<DataThroughput> Reference, string? ReferenceError)
{
    /// <summary>Osprey / reference samples per second per core for a mode, or null without a reference.</summary>
    public double? PerCoreRatio(string mode)
    {
        var o = Osprey.FirstOrDefault(t => t.Mode == mode);
        // the reference has no disk cache: its ram run stands for it
        var r = Reference.FirstOrDefault(t => t.Mode == mode) ?? (mode == "disk" ? Reference.FirstOrDefault(t => t.Mode == "ram") : null);
        return o is null || r is null ? null : o.SamplesPerSecondPerCore / r.SamplesPerSecondPerCore;
    }
}

/// <summary>Measures the training data pipeline (<c>osprey bench data</c>).</summary>
public static class DataBenchmark
{
    /// <summary>Times Osprey's train loader on the dataset's train split for one cache mode (JPEG = <see cref="ImageCacheMode.None"/>).
    /// With <paramref name="augmentOn"/>: the device path (<c>gpu_augment</c>): the loader collates tiles, and each batch is copied
    /// to that device (pinned and one ahead on CUDA, as the trainer does) and drawn there as float images; pipeline "osprey+device".</summary>
    public static DataThroughput Run(DataBenchmarkOptions options, ImageCacheMode mode, IProgress<string>? progress = null, TorchSharp.torch.Device? augmentOn = null)
    {
        var dataset = DetectionDataset.Load(options.Data, DatasetSplit.Train, new DatasetLoadOptions(options.CacheDirectory));
        var cuda = augmentOn?.type == TorchSharp.DeviceType.CUDA;
        var loaderOptions = new LoaderOptions(ImageSize: options.ImageSize, BatchSize: options.BatchSize, Workers: options.Workers,
            Seed: options.Seed, Cache: mode, CacheDirectory: options.CacheDirectory, MosaicBuffer: options.MosaicBuffer,
            DeviceAugment: augmentOn is not null, PinMemory: cuda);
        using var loader = DataLoader.ForTraining(dataset, loaderOptions);
        var modeName = mode == ImageCacheMode.None ? "jpeg" : mode.ToString().ToLowerInvariant();
        var pipeline = augmentOn is null ? "osprey" : "osprey+device";
        progress?.Report($"{pipeline} {modeName}: {dataset.Count} images, imgsz {options.ImageSize}, {options.Workers} workers{(augmentOn is null ? "" : $", augmenting on {augmentOn}")}");
        var timed = 0;
        var warmed = false;
        var clock = new Stopwatch();
        var cpu = TimeSpan.Zero;
        long decoded = 0;
        for (var epoch = 0; timed < options.Samples; epoch++)
        {
            var batches = loader.Epoch(epoch);
            if (cuda) batches = DevicePrefetch.Ahead(batches, augmentOn!);
            foreach (var batch in batches)
            {
                using (batch)
                {
                    if (augmentOn is not null)
                    {
                        using var images = batch.ImagesAsFloat(augmentOn);
                        if (cuda) TorchSharp.torch.cuda.synchronize(augmentOn);
                    }
                    if (!warmed)
                    {
                        warmed = true;
                        cpu = Process.GetCurrentProcess().TotalProcessorTime;
                        decoded = loader.Decoded ?? 0;
                        clock.Start();
                        continue;
                    }
                    timed += batch.Size;
                }
                if (timed >= options.Samples) break;
            }
        }
        clock.Stop();
        var cpuSeconds = (Process.GetCurrentProcess().TotalProcessorTime - cpu).TotalSeconds;
        // without the recent-image store every tile is a decode (jpeg) or none (ram, disk); the store counts its own
        long decodes = loader.Decoded is { } d ? d - decoded : mode == ImageCacheMode.None ? -1 : 0;
        return new DataThroughput(pipeline, modeName, timed, clock.Elapsed.TotalSeconds, Math.Max(1, Math.Min(options.Workers, Environment.ProcessorCount)),
            cpuSeconds, decodes);
    }

    /// <summary>Runs <c>bench/data_reference.py</c> (single-threaded OpenCV) on the train images and parses its JSON line.</summary>
    public static DataThroughput RunReference(DataBenchmarkOptions options, string mode, string scriptPath, string python = "/usr/bin/python3")
    {
        var config = DatasetCatalog.Resolve(options.Data, options.CacheDirectory);
        var start = new ProcessStartInfo(python) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var arg in new[] { scriptPath, config.Train[0], "--imgsz", options.ImageSize.ToString(CultureInfo.InvariantCulture),
                     "--samples", options.Samples.ToString(CultureInfo.InvariantCulture), "--cache", mode == "jpeg" ? "none" : mode, "--threads", "1",
                     "--buffer", options.MosaicBuffer.ToString(CultureInfo.InvariantCulture), "--seed", options.Seed.ToString(CultureInfo.InvariantCulture) })
            start.ArgumentList.Add(arg);
        using var process = Process.Start(start) ?? throw new InvalidOperationException($"Cannot start {python}.");
        var stderr = process.StandardError.ReadToEndAsync();
        var stdout = process.StandardOutput.ReadToEnd();
        process.WaitForExit();
        if (process.ExitCode != 0)
            throw new InvalidOperationException($"{python} {scriptPath} failed ({process.ExitCode}): {stderr.Result.Trim()}");
        var line = stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries).Last();
        using var json = JsonDocument.Parse(line);
        return new DataThroughput("reference", mode, json.RootElement.GetProperty("samples").GetInt32(),
            json.RootElement.GetProperty("seconds").GetDouble(), 1,
            json.RootElement.TryGetProperty("cpu_seconds", out var cpu) ? cpu.GetDouble() : 0,
            json.RootElement.TryGetProperty("decodes", out var decodes) ? decodes.GetInt64() : -1);
    }

    /// <summary>Runs Osprey and the reference from JPEG and from a cache (<paramref name="cache"/>: ram, or disk against the
    /// reference's ram) and returns both with their per-core ratio.</summary>
    public static DataBenchmarkComparison Compare(DataBenchmarkOptions options, string referenceScript, string python = "/usr/bin/python3",
        IProgress<string>? progress = null, ImageCacheMode cache = ImageCacheMode.Ram)
    {
        if (cache == ImageCacheMode.None) throw new ArgumentException("The cached run needs ram or disk.", nameof(cache));
        var osprey = new[] { Run(options, ImageCacheMode.None, progress), Run(options, cache, progress) };
        try
        {
            progress?.Report("reference (Python + OpenCV, one process, one thread)");
            var reference = new[] { RunReference(options, "jpeg", referenceScript, python), RunReference(options, "ram", referenceScript, python) };
            return new DataBenchmarkComparison(osprey, reference, null);
        }
        catch (Exception e) when (e is InvalidOperationException or System.ComponentModel.Win32Exception or JsonException or IOException)
        {
            return new DataBenchmarkComparison(osprey, [], e.Message);
        }
    }
}
