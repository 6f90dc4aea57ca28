using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using OpenCvSharp;
using Osprey.Inference;
using Osprey.Serving;
using TorchSharp;

namespace Osprey.Benchmarks;

/// <summary>Settings of <see cref="ServeBenchmark"/>.</summary>
public sealed record ServeBenchOptions
{
    /// <summary>The model (any <c>model=</c>; a YAML gives random weights: the speed is the architecture's).</summary>
    public string Model { get; init; } = "yolov8n.yaml";

    /// <summary>auto, torch or onnxruntime, as <c>osprey serve</c> takes it.</summary>
    public string Backend { get; init; } = "auto";

    /// <summary>Where the model runs; null = CPU.</summary>
    public torch.Device? Device { get; init; }

    /// <summary>Input size and thresholds.</summary>
    public PredictOptions Predict { get; init; } = new() { ImageSize = 320 };

    /// <summary>Synthetic streams.</summary>
    public int Streams { get; init; } = 16;

    /// <summary>Frames a second of each stream.</summary>
    public double Fps { get; init; } = 30;

    /// <summary>Clients sending POST /v1/detect one request after another.</summary>
    public int Clients { get; init; } = 2;

    /// <summary>Time run before the measurement (streams opened, models warm, batches settled).</summary>
    public TimeSpan Warmup { get; init; } = TimeSpan.FromSeconds(5);

    /// <summary>Time measured.</summary>
    public TimeSpan Duration { get; init; } = TimeSpan.FromSeconds(30);

    /// <summary>The server's max_batch and max_delay.</summary>
    public int MaxBatch { get; init; } = 16;

    /// <inheritdoc cref="MaxBatch"/>
    public TimeSpan MaxDelay { get; init; } = TimeSpan.FromMilliseconds(5);

    /// <summary>A folder or glob of images for the frames; null: drawn pictures.</summary>
    public string? Images { get; init; }

    /// <summary>The streams' frame size (640 × 480).</summary>
    public int Width { get; init; } = 640;

    /// <inheritdoc cref="Width"/>
    public int Height { get; init; } = 480;
}

/// <summary>One stream's share of the measured time: results a second, end-to-end latency (frame read → result sent) of its results, frames predicted and dropped, reopenings.</summary>
public sealed record StreamBenchResult(string Id, double Fps, LatencyStats? Latency, long Frames, long Dropped, int Reconnects);

/// <summary>The requests answered in the measured time, those that failed, answers a second and their latency (sent → answered).</summary>
public sealed record RequestBenchResult(int Answered, int Failed, double PerSecond, LatencyStats? Latency);

/// <summary>What <see cref="ServeBenchmark"/> measured.</summary>
/// <param name="Streams">Each stream.</param>
/// <param name="Requests">The request load.</param>
/// <param name="MeanBatch">Images per batch.</param>
/// <param name="BatchSizes">Share of the batches per size range (the histogram's buckets: "1", "2", "3-4" …).</param>
/// <param name="ServerImagesPerSecond">Images the server predicted a second (streams and requests).</param>
/// <param name="BareBatch">The batch the bare model ran: the server's mean, rounded.</param>
/// <param name="BareImagesPerSecond">The same model's throughput on batches of <paramref name="BareBatch"/> predicted directly, in the same run.</param>
/// <param name="Backend">The backend that served.</param>
/// <param name="Seconds">The measured time.</param>
/// <param name="FramesSent">Frames the cameras sent in the measured time.</param>
/// <param name="WorkerBusy">Share of the measured time the inference worker spent predicting.</param>
/// <param name="ServerBatchSeconds">Mean time of a batch's prediction in the server.</param>
/// <param name="BareBatchSeconds">Mean time of a bare batch (of <paramref name="BareBatch"/> images).</param>
/// <param name="BareDecodingImagesPerSecond">The bare model's throughput when each batch's JPEG frames are decoded first, as
/// <c>predict</c> on the frames would do (the server decodes every frame it predicts).</param>
public sealed record ServeBenchReport(IReadOnlyList<StreamBenchResult> Streams, RequestBenchResult Requests, double MeanBatch,
    IReadOnlyList<(string Range, double Share)> BatchSizes, double ServerImagesPerSecond, int BareBatch, double BareImagesPerSecond, string Backend,
    double Seconds, long FramesSent, double WorkerBusy, double ServerBatchSeconds, double BareBatchSeconds, double BareDecodingImagesPerSecond)
{
    /// <summary>The server's throughput over the bare model's (the goal: ≥ 0.9, the server's own work hidden).</summary>
    public double Ratio => ServerImagesPerSecond / BareImagesPerSecond;
}

/// <summary>
/// <c>osprey bench serve</c>: an <see cref="OspreyServer"/> on 127.0.0.1 reading N synthetic MJPEG cameras
/// (<see cref="SyntheticStreams"/>, 30 fps each) with a Server-Sent-Events client per stream, and clients sending
/// <c>POST /v1/detect</c> one request after another beside them; after a warm-up, each stream's fps and end-to-end
/// latency (frame read → result sent, from its events), the requests' latency, the batch sizes, dropped frames, and the
/// server's throughput over the same model's bare batched throughput measured right after in the same run.
/// </summary>
public static class ServeBenchmark
{
    /// <summary>Runs it; <paramref name="progress"/> gets a line per phase.</summary>
    public static async Task<ServeBenchReport> RunAsync(ServeBenchOptions options, IProgress<string>? progress = null)
    {
        var frames = SyntheticStreams.Frames(options.Images, options.Width, options.Height);
        await using var cameras = new SyntheticStreams(frames, options.Fps);
        var serve = new ServeOptions
        {
            Model = options.Model, Backend = options.Backend, Device = options.Device, Predict = options.Predict, Host = "127.0.0.1", Port = 0,
            MaxBatch = options.MaxBatch, MaxDelay = options.MaxDelay, MaxQueue = Math.Max(64, 2 * (options.Streams + options.Clients)),
            MaxStreams = Math.Max(64, options.Streams),
        };
        progress?.Report($"loading {options.Model} (backend={options.Backend})");
        Measured measured;
        string backend;
        await using (var server = await OspreyServer.StartAsync(serve).ConfigureAwait(false))
        {
            backend = server.Models.Current!.Backend;
            progress?.Report($"{server.Url}: adding {options.Streams} streams of {options.Width}×{options.Height} at {options.Fps} fps");
            var streams = await Task.WhenAll(Enumerable.Range(0, options.Streams).Select(i => server.Streams.AddAsync(cameras.Url(i)))).ConfigureAwait(false);
            measured = await Measure(server, streams, cameras, frames[0], options, progress).ConfigureAwait(false);
        }
        int bareBatch = Math.Max(1, (int)Math.Round(measured.MeanBatch));
        progress?.Report($"the bare model on batches of {bareBatch}");
        var bareTime = Clamp(options.Duration / 2, TimeSpan.FromSeconds(5), TimeSpan.FromSeconds(20));
        var (bare, bareBatchSeconds) = BareThroughput(options, frames, bareBatch, bareTime, decode: false);
        var (decoding, _) = BareThroughput(options, frames, bareBatch, bareTime, decode: true);
        return new ServeBenchReport(measured.Streams, measured.Requests, measured.MeanBatch, measured.BatchSizes, measured.ImagesPerSecond, bareBatch,
            bare, backend, measured.Seconds, measured.FramesSent, measured.InferenceSeconds / measured.Seconds,
            measured.Batches > 0 ? measured.InferenceSeconds / measured.Batches : 0, bareBatchSeconds, decoding);
    }

    sealed record Measured(IReadOnlyList<StreamBenchResult> Streams, RequestBenchResult Requests, double MeanBatch,
        IReadOnlyList<(string, double)> BatchSizes, double ImagesPerSecond, double Seconds, long FramesSent, double Batches, double InferenceSeconds);

    // The load and the watchers run through warm-up and measurement; only what happened between the two snapshots counts.
    static async Task<Measured> Measure(OspreyServer server, IReadOnlyList<LiveStream> streams, SyntheticStreams cameras, byte[] jpeg,
        ServeBenchOptions options, IProgress<string>? progress)
    {
        using var client = new HttpClient { BaseAddress = new Uri(server.Url), Timeout = TimeSpan.FromMinutes(2) };
        using var stop = new CancellationTokenSource();
        var events = streams.Select(s => new List<(long At, double LatencyMs)>()).ToArray();
        var answers = new List<(long At, double Ms, bool Ok)>();
        var tasks = streams.Select((s, i) => Watch(client, s.Id, events[i], stop.Token))
            .Concat(Enumerable.Range(0, options.Clients).Select(_ => Send(client, jpeg, answers, stop.Token))).ToArray();
        progress?.Report($"warming up for {options.Warmup.TotalSeconds:0} s");
        await Task.Delay(options.Warmup).ConfigureAwait(false);
        var before = await Snapshot(client, streams, cameras).ConfigureAwait(false);
        progress?.Report($"measuring for {options.Duration.TotalSeconds:0} s");
        await Task.Delay(options.Duration).ConfigureAwait(false);
        var after = await Snapshot(client, streams, cameras).ConfigureAwait(false);
        await stop.CancelAsync().ConfigureAwait(false);
        await Task.WhenAll(tasks).ConfigureAwait(false);

        double seconds = Stopwatch.GetElapsedTime(before.At, after.At).TotalSeconds;
        bool Inside(long at) => at >= before.At && at <= after.At;
        var results = streams.Select((s, i) =>
        {
            double[] latencies;
            lock (events[i]) latencies = events[i].Where(e => Inside(e.At)).Select(e => e.LatencyMs).ToArray();
            return new StreamBenchResult(s.Id, latencies.Length / seconds, latencies.Length > 0 ? new LatencyStats(latencies) : null,
                after.Frames[i] - before.Frames[i], after.Dropped[i] - before.Dropped[i], s.Reconnects);
        }).ToArray();
        (long At, double Ms, bool Ok)[] answered;
        lock (answers) answered = answers.Where(a => Inside(a.At)).ToArray();
        var ok = answered.Where(a => a.Ok).Select(a => a.Ms).ToArray();
        var requests = new RequestBenchResult(ok.Length, answered.Length - ok.Length, ok.Length / seconds, ok.Length > 0 ? new LatencyStats(ok) : null);
        double batches = after.Batches - before.Batches, images = after.Images - before.Images;
        var sizes = after.Buckets.Select((b, k) => (b.Range, Share: batches > 0 ? (b.Count - before.Buckets[k].Count) / batches : 0)).ToArray();
        return new Measured(results, requests, batches > 0 ? images / batches : 0, sizes, images / seconds, seconds, after.Sent - before.Sent,
            batches, after.InferenceSeconds - before.InferenceSeconds);
    }

    // A stream's Server-Sent Events: each result's arrival and its latency_ms.
    static async Task Watch(HttpClient client, string id, List<(long, double)> events, CancellationToken stop)
    {
        try
        {
            using var response = await client.GetAsync($"/v1/streams/{id}/events", HttpCompletionOption.ResponseHeadersRead, stop).ConfigureAwait(false);
            using var reader = new StreamReader(await response.Content.ReadAsStreamAsync(stop).ConfigureAwait(false));
            while (await reader.ReadLineAsync(stop).ConfigureAwait(false) is { } line)
            {
                if (!line.StartsWith("data: {\"stream\"", StringComparison.Ordinal)) continue;
                using var json = JsonDocument.Parse(line.AsMemory(6));
                if (json.RootElement.TryGetProperty("latency_ms", out var latency))
                    lock (events) events.Add((Stopwatch.GetTimestamp(), latency.GetDouble()));
            }
        }
        catch (Exception e) when (e is OperationCanceledException or IOException or HttpRequestException)
        {
            // the measurement is over
        }
    }

    // One client: a request after another, each timed from send to answer.
    static async Task Send(HttpClient client, byte[] jpeg, List<(long, double, bool)> answers, CancellationToken stop)
    {
        while (!stop.IsCancellationRequested)
        {
            long start = Stopwatch.GetTimestamp();
            bool ok;
            try
            {
                using var body = new ByteArrayContent(jpeg);
                body.Headers.ContentType = new System.Net.Http.Headers.MediaTypeHeaderValue("image/jpeg");
                using var response = await client.PostAsync("/v1/detect", body, stop).ConfigureAwait(false);
                await response.Content.ReadAsByteArrayAsync(stop).ConfigureAwait(false);
                ok = response.IsSuccessStatusCode;
            }
            catch (Exception e) when (e is OperationCanceledException or IOException or HttpRequestException)
            {
                if (stop.IsCancellationRequested) return;
                ok = false;
            }
            long end = Stopwatch.GetTimestamp();
            lock (answers) answers.Add((end, Stopwatch.GetElapsedTime(start, end).TotalMilliseconds, ok));
        }
    }

    sealed record Counts(long At, long[] Frames, long[] Dropped, double Images, double Batches, (string Range, double Count)[] Buckets, long Sent,
        double InferenceSeconds);

    static async Task<Counts> Snapshot(HttpClient client, IReadOnlyList<LiveStream> streams, SyntheticStreams cameras)
    {
        string metrics = await client.GetStringAsync("/metrics").ConfigureAwait(false);
        return new Counts(Stopwatch.GetTimestamp(), streams.Select(s => s.Frames).ToArray(), streams.Select(s => s.Dropped).ToArray(),
            Sample(metrics, "osprey_batch_size_sum"), Sample(metrics, "osprey_batch_size_count"), Buckets(metrics), cameras.Sent,
            Sample(metrics, "osprey_inference_seconds_sum"));
    }

    static double Sample(string metrics, string name) => metrics.Split('\n')
        .Where(l => l.StartsWith(name + " ", StringComparison.Ordinal))
        .Select(l => double.Parse(l[(name.Length + 1)..], CultureInfo.InvariantCulture)).FirstOrDefault();

    // osprey_batch_size_bucket{le="…"} lines (cumulative) as counts per range: "1", "2", "3-4", "5-8" …
    static (string Range, double Count)[] Buckets(string metrics)
    {
        const string Prefix = "osprey_batch_size_bucket{le=\"";
        var cumulative = metrics.Split('\n').Where(l => l.StartsWith(Prefix, StringComparison.Ordinal)).Select(l =>
        {
            string le = l[Prefix.Length..l.IndexOf('"', Prefix.Length)];
            return (Le: le, Count: double.Parse(l[(l.LastIndexOf(' ') + 1)..], CultureInfo.InvariantCulture));
        }).ToArray();
        var ranges = new (string, double)[cumulative.Length];
        string low = "1";
        for (int k = 0; k < cumulative.Length; k++)
        {
            var (le, count) = cumulative[k];
            string range = le == "+Inf" ? $">{cumulative[Math.Max(0, k - 1)].Le}" : low == le ? le : $"{low}-{le}";
            ranges[k] = (range, count - (k > 0 ? cumulative[k - 1].Count : 0));
            if (le != "+Inf") low = ((int)double.Parse(le, CultureInfo.InvariantCulture) + 1).ToString(CultureInfo.InvariantCulture);
        }
        return ranges;
    }

    // The model as the server runs it (same backend rule), on batches of the same frames, decoded beforehand or, with
    // decode, decoded again for each batch; images a second and seconds a batch.
    static (double ImagesPerSecond, double BatchSeconds) BareThroughput(ServeBenchOptions options, IReadOnlyList<byte[]> frames, int batch,
        TimeSpan duration, bool decode)
    {
        using var backend = new ServeBackend(options.Backend, options.Predict, options.Device);
        using var detector = backend.Open(options.Model);
        var images = Enumerable.Range(0, batch).Select(i => Cv2.ImDecode(frames[i % frames.Count], ImreadModes.Color)).ToArray();
        try
        {
            for (int i = 0; i < 2; i++) detector.Predict(images);
            var clock = Stopwatch.StartNew();
            int runs = 0;
            while (clock.Elapsed < duration || runs < 3)
            {
                if (decode)
                    for (int i = 0; i < batch; i++)
                    {
                        images[i].Dispose();
                        images[i] = Cv2.ImDecode(frames[(runs * batch + i) % frames.Count], ImreadModes.Color);
                    }
                detector.Predict(images);
                runs++;
            }
            return (runs * batch / clock.Elapsed.TotalSeconds, clock.Elapsed.TotalSeconds / runs);
        }
        finally
        {
            foreach (var image in images) image.Dispose();
        }
    }

    static TimeSpan Clamp(TimeSpan value, TimeSpan low, TimeSpan high) => value < low ? low : value > high ? high : value;
}
