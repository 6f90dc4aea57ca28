using Osprey.Config;
using Osprey.Inference;
using TorchSharp;

namespace Osprey.Serving;

/// <summary>
/// Settings of an <see cref="OspreyServer"/>: the model and how it runs (backend, device, <see cref="PredictOptions"/>), where
/// it listens, the dynamic batcher's limits (<see cref="MaxBatch"/>, <see cref="MaxDelay"/>, <see cref="MaxQueue"/>) and the
/// input limits that turn a too-large request into a 413, and the streams it reads (<see cref="Streams"/> and how they are read).
/// </summary>
public sealed record ServeOptions
{
    /// <summary>Request bodies larger than this get 413 (32 MiB).</summary>
    public const long DefaultMaxBodyBytes = 32L << 20;

    /// <summary>Decoded images wider or taller than this get 413 (8192).</summary>
    public const int DefaultMaxImageSide = 8192;

    /// <summary>Decoded images with more pixels than this get 413 (50 megapixels).</summary>
    public const long DefaultMaxImagePixels = 50_000_000;

    /// <summary>The first model: any path <c>model=</c> takes (weights with a sidecar YAML, a YAML, an ONNX export).</summary>
    public required string Model { get; init; }

    /// <summary>auto, torch or onnxruntime (<see cref="Detectors.Open"/>).</summary>
    public string Backend { get; init; } = "auto";

    /// <summary>Where the model runs; null = CPU.</summary>
    public torch.Device? Device { get; init; }

    /// <summary>Input size and thresholds of every model the server loads.</summary>
    public PredictOptions Predict { get; init; } = new();

    /// <summary>Address to listen on (127.0.0.1).</summary>
    public string Host { get; init; } = "127.0.0.1";

    /// <summary>Port to listen on; 0 picks a free one (<see cref="OspreyServer.Url"/> says which).</summary>
    public int Port { get; init; } = 8080;

    /// <summary>Largest batch the dynamic batcher forms (16).</summary>
    public int MaxBatch { get; init; } = 16;

    /// <summary>Longest wait for more work, counted from the oldest queued item's arrival (Triton's max_queue_delay).</summary>
    public TimeSpan MaxDelay { get; init; } = TimeSpan.FromMilliseconds(5);

    /// <summary>Items that may wait in the queue; one more is refused (HTTP 503).</summary>
    public int MaxQueue { get; init; } = 64;

    /// <summary>Watch the model file and load it again when it changes.</summary>
    public bool Watch { get; init; }

    /// <summary>Largest request body (bytes).</summary>
    public long MaxBodyBytes { get; init; } = DefaultMaxBodyBytes;

    /// <summary>Largest decoded image side (pixels).</summary>
    public int MaxImageSide { get; init; } = DefaultMaxImageSide;

    /// <summary>Largest decoded image area (pixels).</summary>
    public long MaxImagePixels { get; init; } = DefaultMaxImagePixels;

    /// <summary>Quiet period after the last change of a watched file before it is loaded (500 ms).</summary>
    public TimeSpan WatchDebounce { get; init; } = TimeSpan.FromMilliseconds(500);

    /// <summary>Streams to add at start (<c>source=</c>: the lines of a <c>.streams</c> file, or one URL or video path).</summary>
    public IReadOnlyList<string> Streams { get; init; } = Array.Empty<string>();

    /// <summary>stream_buffer: predict every frame of a stream, up to 30 waiting (false: only the newest, dropping the rest).</summary>
    public bool StreamBuffer { get; init; }

    /// <summary>vid_stride: every n-th frame of a stream is read.</summary>
    public int VidStride { get; init; } = 1;

    /// <summary>Longest wait for a new stream's first frame before it is refused (10 s).</summary>
    public TimeSpan StreamOpenTimeout { get; init; } = TimeSpan.FromSeconds(10);

    /// <summary>Reopening attempts of a live stream without a frame before it ends; null: predict's rule (OSPREY_STREAM_RECONNECT, default 30).</summary>
    public int? StreamReconnects { get; init; }

    /// <summary>The wait before each reopening attempt (1 s, as predict).</summary>
    public TimeSpan StreamReconnectDelay { get; init; } = TimeSpan.FromSeconds(1);

    /// <summary>Streams a server reads at most (64); one more is refused (409).</summary>
    public int MaxStreams { get; init; } = 64;

    /// <summary>The options <c>osprey serve</c>'s arguments give (model, backend, device, imgsz, conf, iou … host, port, batcher limits).</summary>
    /// <exception cref="ArgumentsException">No model, or a limit out of range.</exception>
    public static ServeOptions FromArgs(OspreyArgs args)
    {
        string model = args.Model ?? throw new ArgumentsException("serve needs model=… (weights, YAML or .onnx)");
        if (args.Port is < 0 or > 65535) throw new ArgumentsException($"port={args.Port}: must be 0 (any free port) … 65535");
        if (args.MaxBatch < 1) throw new ArgumentsException($"max_batch={args.MaxBatch}: must be ≥ 1");
        if (args.MaxQueue < 1) throw new ArgumentsException($"max_queue={args.MaxQueue}: must be ≥ 1");
        if (args.MaxDelayMs < 0 || double.IsNaN(args.MaxDelayMs))
            throw new ArgumentsException($"max_delay_ms={args.MaxDelayMs}: must be ≥ 0");
        if (!Detectors.Backends.Contains(args.Backend))
            throw new ArgumentsException($"backend={args.Backend}: expected one of {string.Join(", ", Detectors.Backends)}");
        if (args.VidStride < 1) throw new ArgumentsException($"vid_stride={args.VidStride}: must be ≥ 1");
        return new ServeOptions
        {
            Model = model, Backend = args.Backend, Device = args.DeviceOrDefault().Resolve(), Predict = PredictRun.Options(args),
            Host = args.Host, Port = args.Port, MaxBatch = args.MaxBatch, MaxDelay = TimeSpan.FromMilliseconds(args.MaxDelayMs),
            MaxQueue = args.MaxQueue, Watch = args.Watch, Streams = StreamsOf(args.Source), StreamBuffer = args.StreamBuffer, VidStride = args.VidStride,
        };
    }

    /// <summary>
    /// The streams <c>source=</c> names: a <c>.streams</c> file's lines (one URL or video path each; blank lines and
    /// <c># comments</c> skipped, as predict reads it), or the one URL or video path given; none without it.
    /// </summary>
    /// <exception cref="FileNotFoundException">A .streams file that does not exist.</exception>
    /// <exception cref="InvalidDataException">A .streams file that lists no stream.</exception>
    public static IReadOnlyList<string> StreamsOf(string? source) =>
        string.IsNullOrWhiteSpace(source) ? Array.Empty<string>()
        : source.EndsWith(".streams", StringComparison.OrdinalIgnoreCase) ? PredictSource.Resolve(source)[0].Paths
        : new[] { source };
}
