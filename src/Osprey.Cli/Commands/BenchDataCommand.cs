using System.Globalization;
using Osprey.Benchmarks;
using Osprey.Config;
using Osprey.Data;
using Spectre.Console;

namespace Osprey.Cli;

/// <summary>
/// <c>osprey bench data data=coco128.yaml [imgsz=640] [workers=1] [batch=16] [cache=ram|disk] [epochs=4] [seed=0]</c>: the training
/// data pipeline's throughput from JPEG and from the cache, Osprey against <c>bench/data_reference.py</c> (the same pipeline in
/// Python + OpenCV, one process, one thread), in samples/s, per core and per CPU-second. <c>epochs</c> = passes over the train
/// split that are timed. <c>gpu_augment=True</c> adds a row for the device path (the loader only decodes; mosaic, affine, HSV
/// and flips as tensor ops on <c>device=</c>, timed up to the float batch there). Registered as <c>bench-data</c>; <c>osprey bench data</c> is folded into that name.
/// </summary>
public sealed class BenchDataCommand : ICliCommand
{
    public string Name => "bench-data";
    public string Description => "data pipeline throughput, Osprey vs the Python/OpenCV reference (osprey bench data data=… [imgsz] [workers] [cache=ram] [epochs=4])";

    public OspreyArgs Defaults() => new() { Epochs = 4, Workers = 1 };

    public int Execute(OspreyArgs args, IAnsiConsole output)
    {
        string data = args.Data ?? throw new ArgumentsException("bench data needs data=… (e.g. data=coco128.yaml)");
        if (args.Epochs <= 0) throw new ArgumentsException("bench data needs epochs ≥ 1 (passes over the train split to time)");
        if (args.Workers <= 0) throw new ArgumentsException("bench data needs workers ≥ 1");
        var cache = args.Cache == ImageCacheMode.Disk ? ImageCacheMode.Disk : ImageCacheMode.Ram;
        int count = DetectionDataset.Load(data, DatasetSplit.Train).Count;
        // OSPREY_MOSAIC_BUFFER=0: both sides with uniform mosaic partners and a decode per tile (the semantics before the buffer)
        int buffer = int.TryParse(Environment.GetEnvironmentVariable("OSPREY_MOSAIC_BUFFER"), out var b) ? b : new LoaderOptions().MosaicBuffer;
        var options = new DataBenchmarkOptions(data, args.Imgsz, args.Workers, Math.Max(1, args.Epochs * count), Math.Max(1, args.WholeBatch("bench")), args.Seed,
            MosaicBuffer: buffer);
        string script = BenchReference.Script("data_reference.py", "OSPREY_DATA_REFERENCE");
        string python = Environment.GetEnvironmentVariable("OSPREY_PYTHON") ?? "/usr/bin/python3";
        var progress = new BenchProgress(output);
        var c = DataBenchmark.Compare(options, script, python, progress, cache);
        // gpu_augment=True: the device path too, from the cache, drawn on the selected device (device=…; default cuda:0 when available)
        var device = args.GpuAugment ? args.DeviceOrDefault().Resolve(0) : null;
        var onDevice = device is null ? [] : new[] { DataBenchmark.Run(options, cache, progress, device) };

        var table = new Table().Border(TableBorder.Simple).AddColumn("pipeline").AddColumn("mode")
            .AddColumn(new TableColumn("samples").RightAligned()).AddColumn(new TableColumn("seconds").RightAligned())
            .AddColumn(new TableColumn("samples/s").RightAligned()).AddColumn(new TableColumn("cores").RightAligned())
            .AddColumn(new TableColumn("per core").RightAligned()).AddColumn(new TableColumn("per CPU-s").RightAligned())
            .AddColumn(new TableColumn("decodes/sample").RightAligned());
        foreach (var t in c.Osprey.Concat(onDevice).Concat(c.Reference))
            table.AddRow(t.Pipeline, t.Mode, I(t.Samples), F(t.Seconds, "0.00"), F(t.SamplesPerSecond, "0.0"), I(t.Cores),
                F(t.SamplesPerSecondPerCore, "0.0"), t.SamplesPerCpuSecond is { } x ? F(x, "0.0") : "-",
                t.Decodes >= 0 ? F((double)t.Decodes / t.Samples, "0.00") : t.Mode == "jpeg" ? "4 per mosaic" : "-");
        output.Write(table);
        output.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"{data}: imgsz {args.Imgsz}, workers {args.Workers}, batch {options.BatchSize}, {options.Samples} samples per mode, mosaic buffer {options.MosaicBuffer} (both sides), {Environment.ProcessorCount} cores{(device is null ? "" : $"; osprey+device: augmentation on {device}")}"));
        if (c.ReferenceError is not null)
        {
            output.MarkupLine($"[yellow]reference did not run:[/] {Markup.Escape(c.ReferenceError)}");
            return 0;
        }
        foreach (var mode in new[] { "jpeg", c.Osprey[1].Mode })
        {
            var o = c.Osprey.First(t => t.Mode == mode);
            var r = c.Reference.FirstOrDefault(t => t.Mode == mode) ?? c.Reference[1];
            string cpu = o.SamplesPerCpuSecond is { } oc && r.SamplesPerCpuSecond is { } rc ? string.Create(CultureInfo.InvariantCulture, $", per CPU-second {oc / rc:0.00}×") : "";
            output.WriteLine(string.Create(CultureInfo.InvariantCulture, $"ratio {mode}: per core {c.PerCoreRatio(mode):0.00}×{cpu}"));
        }
        return 0;
    }

    static string I(int value) => value.ToString(CultureInfo.InvariantCulture);

    static string F(double value, string format) => value.ToString(format, CultureInfo.InvariantCulture);
}
