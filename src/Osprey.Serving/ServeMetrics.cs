using Prometheus;

namespace Osprey.Serving;

/// <summary>
/// A server's Prometheus metrics, in a registry of its own (two servers in one process, as in the tests, do not share
/// counts), with the .NET process metrics (<c>process_working_set_bytes</c>, GC counts …) beside them:
/// <c>osprey_requests_total{route,code}</c>, <c>osprey_frames_total{source}</c>, <c>osprey_batch_size</c>,
/// <c>osprey_queue_wait_seconds</c>, <c>osprey_inference_seconds</c>, <c>osprey_request_latency_seconds{route}</c>,
/// <c>osprey_dropped_frames_total{source}</c>, <c>osprey_stream_latency_seconds{source}</c>, <c>osprey_model_swaps_total{result}</c>, <c>osprey_model_version</c>,
/// <c>osprey_queue_depth</c>.
/// </summary>
public sealed class ServeMetrics
{
    static readonly double[] SecondsBuckets = Histogram.ExponentialBuckets(0.0005, 2, 16);    // 0.5 ms … 16 s

    /// <param name="maxBatch">Largest batch (the batch-size buckets are 1, 2, 4 … up to it).</param>
    public ServeMetrics(int maxBatch)
    {
        Registry = Prometheus.Metrics.NewCustomRegistry();
        DotNetStats.Register(Registry);
        var factory = Prometheus.Metrics.WithCustomRegistry(Registry);
        Requests = factory.CreateCounter("osprey_requests_total", "HTTP requests answered, by route and status code.", "route", "code");
        Frames = factory.CreateCounter("osprey_frames_total", "Images predicted, by source (request or a stream's name).", "source");
        int powers = (int)Math.Ceiling(Math.Log2(Math.Max(2, maxBatch))) + 1;
        BatchSize = factory.CreateHistogram("osprey_batch_size", "Images per batch the inference worker ran.",
            new HistogramConfiguration { Buckets = Histogram.ExponentialBuckets(1, 2, powers) });
        QueueWait = factory.CreateHistogram("osprey_queue_wait_seconds", "Time an image waited in the batcher's queue.",
            new HistogramConfiguration { Buckets = SecondsBuckets });
        Inference = factory.CreateHistogram("osprey_inference_seconds", "Time of one batch's prediction (letterbox, model, NMS).",
            new HistogramConfiguration { Buckets = SecondsBuckets });
        RequestLatency = factory.CreateHistogram("osprey_request_latency_seconds", "Time from a request's arrival to its answer, by route.",
            new HistogramConfiguration { Buckets = SecondsBuckets, LabelNames = new[] { "route" } });
        DroppedFrames = factory.CreateCounter("osprey_dropped_frames_total",
            "Images not predicted, by source: refused by a full queue; for a stream also frames replaced by a newer one while its last was in flight.", "source");
        StreamLatency = factory.CreateHistogram("osprey_stream_latency_seconds", "Time from a stream's frame being read to its result being sent, by stream.",
            new HistogramConfiguration { Buckets = SecondsBuckets, LabelNames = new[] { "source" } });
        Swaps = factory.CreateCounter("osprey_model_swaps_total", "Model loads after the first: swapped (ok) or refused.", "result");
        ModelVersion = factory.CreateGauge("osprey_model_version", "Version of the serving model.");
        QueueDepth = factory.CreateGauge("osprey_queue_depth", "Images waiting in the batcher's queue.");
        // published at 0 from the start, so a scrape sees them before the first swap or drop
        Swaps.WithLabels("ok").Publish();
        Swaps.WithLabels("refused").Publish();
        Frames.WithLabels("request").Publish();
        DroppedFrames.WithLabels("request").Publish();
    }

    /// <summary>The registry <c>GET /metrics</c> exports.</summary>
    public CollectorRegistry Registry { get; }

    /// <summary>osprey_requests_total{route,code}.</summary>
    public Counter Requests { get; }

    /// <summary>osprey_frames_total{source}.</summary>
    public Counter Frames { get; }

    /// <summary>osprey_batch_size.</summary>
    public Histogram BatchSize { get; }

    /// <summary>osprey_queue_wait_seconds.</summary>
    public Histogram QueueWait { get; }

    /// <summary>osprey_inference_seconds.</summary>
    public Histogram Inference { get; }

    /// <summary>osprey_request_latency_seconds{route}.</summary>
    public Histogram RequestLatency { get; }

    /// <summary>osprey_dropped_frames_total{source}.</summary>
    public Counter DroppedFrames { get; }

    /// <summary>osprey_stream_latency_seconds{source}: frame read → result sent.</summary>
    public Histogram StreamLatency { get; }

    /// <summary>osprey_model_swaps_total{result}: ok or refused.</summary>
    public Counter Swaps { get; }

    /// <summary>osprey_model_version.</summary>
    public Gauge ModelVersion { get; }

    /// <summary>osprey_queue_depth.</summary>
    public Gauge QueueDepth { get; }

    /// <summary>Counts a model event (a swap, a refused load) and follows the serving version.</summary>
    public void Record(ServeEvent e)
    {
        if (e.Kind == ServeEventKind.Swapped) Swaps.WithLabels("ok").Inc();
        else if (e.Kind == ServeEventKind.LoadRefused) Swaps.WithLabels("refused").Inc();
        if (e.Model is { } model && e.Kind is ServeEventKind.Loaded or ServeEventKind.Swapped) ModelVersion.Set(model.Version);
    }
}
