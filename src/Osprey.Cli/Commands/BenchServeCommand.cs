using System.Globalization;
using Osprey.Benchmarks;
using Osprey.Config;
using Osprey.Inference;
using Spectre.Console;

namespace Osprey.Cli;

/// <summary>
/// <c>osprey bench serve [model=yolov8n.yaml] [imgsz=320] [streams=16] [clients=2] [duration=30] [source=images]
/// [max_batch=16] [max_delay_ms=5] [backend=auto]</c>: <c>osprey serve</c> on 127.0.0.1 reading N synthetic MJPEG
/// cameras (30 fps, 640×480, from the images of <c>source</c> or drawn ones) while clients send requests; prints each
/// stream's fps, end-to-end latency p50/p99 (frame read → result sent) and dropped frames, the requests' latency, the
/// batch sizes, and the server's throughput as a ratio of the bare batched model's, measured in the same run
/// (<see cref="ServeBenchmark"/>). Registered as <c>bench-serve</c>; <c>osprey bench serve</c> is folded into that name.
/// </summary>
public sealed class BenchServeCommand : ICliCommand
{
    public string Name => "bench-serve";
    public string Description => "serve N synthetic 30 fps MJPEG streams plus request load: per-stream fps and latency, batch sizes, throughput vs the bare model (osprey bench serve [model=yolov8n.yaml] [imgsz=320] [streams=16] [clients=2] [duration=30] [source=images])";

    public OspreyArgs Defaults() => new() { Model = "yolov8n.yaml", Imgsz = 320 };

    public int Execute(OspreyArgs args, IAnsiConsole output)
    {
        if (args.Streams < 1) throw new ArgumentsException($"streams={args.Streams}: bench serve needs at least one stream");
        if (args.Clients < 0) throw new ArgumentsException($"clients={args.Clients}: must be ≥ 0");
        if (!(args.Duration >= 1)) throw new ArgumentsException($"duration={F(args.Duration)}: bench serve measures at least 1 s");
        if (args.MaxBatch < 1) throw new ArgumentsException($"max_batch={args.MaxBatch}: must be ≥ 1");
        if (!(args.MaxDelayMs >= 0)) throw new ArgumentsException($"max_delay_ms={F(args.MaxDelayMs)}: must be ≥ 0");
        if (!Detectors.Backends.Contains(args.Backend))
            throw new ArgumentsException($"backend={args.Backend}: expected one of {string.Join(", ", Detectors.Backends)}");
        var options = new ServeBenchOptions
        {
            Model = args.Model ?? "yolov8n.yaml", Backend = args.Backend, Device = args.DeviceOrDefault().Resolve(), Predict = PredictRun.Options(args),
            Streams = args.Streams, Clients = args.Clients, Duration = TimeSpan.FromSeconds(args.Duration), MaxBatch = args.MaxBatch,
            MaxDelay = TimeSpan.FromMilliseconds(args.MaxDelayMs), Images = args.Source,
        };
        var report = ServeBenchmark.RunAsync(options, new BenchProgress(output)).GetAwaiter().GetResult();
        Render(report, options, output);
        return 0;
    }

    static void Render(ServeBenchReport report, ServeBenchOptions options, IAnsiConsole output)
    {
        var table = new Table().Border(TableBorder.Simple).AddColumn("stream").AddColumn(new TableColumn("fps").RightAligned())
            .AddColumn(new TableColumn("latency p50 ms").RightAligned()).AddColumn(new TableColumn("p99 ms").RightAligned())
            .AddColumn(new TableColumn("frames").RightAligned()).AddColumn(new TableColumn("dropped").RightAligned())
            .AddColumn(new TableColumn("reconnects").RightAligned());
        foreach (var s in report.Streams)
            table.AddRow(s.Id, F(s.Fps), Ms(s.Latency?.Median), Ms(s.Latency?.Percentile(99)), I(s.Frames), I(s.Dropped), I(s.Reconnects));
        var all = report.Streams.Where(s => s.Latency is not null).SelectMany(s => s.Latency!.Milliseconds).ToArray();
        var overall = all.Length > 0 ? new LatencyStats(all) : null;
        table.AddRow("all", F(report.Streams.Sum(s => s.Fps)), Ms(overall?.Median), Ms(overall?.Percentile(99)), I(report.Streams.Sum(s => s.Frames)),
            I(report.Streams.Sum(s => s.Dropped)), I(report.Streams.Sum(s => s.Reconnects)));
        output.Write(table);
        var r = report.Requests;
        output.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"requests: {r.Answered} answered ({r.PerSecond:0.0}/s), latency p50 {Ms(r.Latency?.Median)} ms, p99 {Ms(r.Latency?.Percentile(99))} ms, {r.Failed} failed"));
        output.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"batches: mean {report.MeanBatch:0.00} images; by size {string.Join(", ", report.BatchSizes.Where(b => b.Share > 0).Select(b => $"{b.Range}: {b.Share:P0}"))}"));
        output.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"throughput: server {report.ServerImagesPerSecond:0.0} images/s; bare model on batches of {report.BareBatch}: {report.BareImagesPerSecond:0.0} images/s; " +
            $"ratio {report.Ratio:0.000} (goal ≥ 0.9)"));
        output.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"  the gap: the worker predicted {report.WorkerBusy:P0} of the time; a batch took {report.ServerBatchSeconds * 1000:0} ms in the server " +
            $"(mean {report.MeanBatch:0.0} images) vs {report.BareBatchSeconds * 1000:0} ms bare ({report.BareBatch}); bare with each batch's JPEGs " +
            $"decoded first: {report.BareDecodingImagesPerSecond:0.0} images/s (ratio {report.ServerImagesPerSecond / report.BareDecodingImagesPerSecond:0.000})"));
        output.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"{options.Model} at {options.Predict.ImageSize} ({report.Backend}), {options.Streams} streams of {options.Width}×{options.Height} at {options.Fps:0} fps " +
            $"({report.FramesSent} frames sent), {options.Clients} request clients, max_batch={options.MaxBatch} max_delay_ms={options.MaxDelay.TotalMilliseconds:0.#}; " +
            $"{options.Warmup.TotalSeconds:0} s warm-up, {report.Seconds:0.0} s measured; CPU: {Environment.ProcessorCount} cores"));
    }

    static string F(double value) => value.ToString("0.0", CultureInfo.InvariantCulture);

    static string I(long value) => value.ToString(CultureInfo.InvariantCulture);

    static string Ms(double? value) => value is { } v ? v.ToString("0", CultureInfo.InvariantCulture) : "–";
}
