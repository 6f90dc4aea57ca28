using System.Net;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.Extensions.DependencyInjection;
using Osprey.Inference;

namespace Osprey.Serving;

/// <summary>
/// <c>osprey serve</c>: an HTTP server (ASP.NET Core on Kestrel) that answers <c>POST /v1/detect</c> with the serving
/// model's detections and reads streams (<see cref="Streams"/>: results over Server-Sent Events, annotated MJPEG out,
/// a page at <c>/</c>). Requests and stream frames go through one <see cref="DynamicBatcher{T}"/> to one
/// <see cref="InferenceWorker"/> per device, so they share batches; the model runs on the backend
/// <see cref="ServeBackend"/> picks and is swapped without stopping (<see cref="ModelHost"/>; by <c>POST /v1/models</c>,
/// or when the watched file changes); <c>GET /metrics</c> exports <see cref="ServeMetrics"/>. The server starts
/// listening only once its first model is loaded and warmed up.
/// </summary>
public sealed class OspreyServer : IAsyncDisposable
{
    readonly WebApplication app;
    readonly Action<ServeEvent>? events;
    readonly ServeBackend backend;
    readonly TaskCompletionSource stopped = new(TaskCreationOptions.RunContinuationsAsynchronously);
    ModelWatcher? watcher;
    int stopping;

    OspreyServer(ServeOptions options, ModelHost models, ServeBackend backend, ServeMetrics metrics, Action<ServeEvent>? events)
    {
        Options = options;
        Models = models;
        Metrics = metrics;
        this.events = events;
        this.backend = backend;
        Streams = new StreamHub(this);
        Batcher = new DynamicBatcher<InferenceItem>(options.MaxBatch, options.MaxDelay, options.MaxQueue);
        Worker = new InferenceWorker(Batcher, models, metrics);
        metrics.Registry.AddBeforeCollectCallback(() => metrics.QueueDepth.Set(Batcher.Count));
        app = BuildApp();
    }

    /// <summary>The settings.</summary>
    public ServeOptions Options { get; }

    /// <summary>The serving model and its swaps.</summary>
    public ModelHost Models { get; }

    /// <summary>The queue every image goes through.</summary>
    public DynamicBatcher<InferenceItem> Batcher { get; }

    /// <summary>The inference worker.</summary>
    public InferenceWorker Worker { get; }

    /// <summary>The streams it reads.</summary>
    public StreamHub Streams { get; }

    /// <summary>The Prometheus metrics.</summary>
    public ServeMetrics Metrics { get; }

    /// <summary>The address it listens on, e.g. <c>http://127.0.0.1:8080</c> (with <c>port=0</c>, the port picked).</summary>
    public string Url { get; private set; } = "";

    /// <summary>True once <see cref="StopAsync"/> began.</summary>
    public bool IsStopping => Volatile.Read(ref stopping) != 0;

    /// <summary>
    /// Loads and warms up the model, starts the inference worker and the HTTP server (and the file watcher with
    /// <see cref="ServeOptions.Watch"/>), then adds <see cref="ServeOptions.Streams"/> (one that cannot be read is
    /// refused, as an event, and the server serves on).
    /// </summary>
    /// <param name="options">Model, limits, address, streams.</param>
    /// <param name="events">Loads, swaps, refused loads, streams added, refused, ended and removed, start and stop, as they happen (for the CLI to print).</param>
    /// <param name="factory">Opens a detector for a path; null: <see cref="ServeBackend.Open"/> with the options' backend, predict options and device.</param>
    /// <param name="cancellation">Cancels the start.</param>
    /// <exception cref="ModelLoadException">The first model cannot be loaded.</exception>
    public static async Task<OspreyServer> StartAsync(ServeOptions options, Action<ServeEvent>? events = null, DetectorFactory? factory = null,
        CancellationToken cancellation = default)
    {
        var metrics = new ServeMetrics(options.MaxBatch);
        var backend = new ServeBackend(options.Backend, options.Predict, options.Device);
        var models = new ModelHost(factory ?? backend.Open);
        models.Events += metrics.Record;
        if (events is not null) models.Events += events;
        try
        {
            await models.LoadAsync(options.Model, cancellation).ConfigureAwait(false);
        }
        catch
        {
            models.Dispose();
            backend.Dispose();
            throw;
        }
        var server = new OspreyServer(options, models, backend, metrics, events);
        try
        {
            server.Worker.Start();
            await server.app.StartAsync(cancellation).ConfigureAwait(false);
            server.Url = server.app.Services.GetRequiredService<IServer>().Features.GetRequiredFeature<IServerAddressesFeature>().Addresses.First();
            if (options.Watch)
                server.watcher = new ModelWatcher(options.Model, options.WatchDebounce, () => models.LoadAsync(options.Model));
        }
        catch
        {
            await server.StopAsync(CancellationToken.None).ConfigureAwait(false);
            throw;
        }
        events?.Invoke(new ServeEvent(ServeEventKind.Listening, $"listening on {server.Url}" + (options.Watch ? $", watching {options.Model}" : ""),
            models.Current));
        await Task.WhenAll(options.Streams.Select(async source =>
        {
            try
            {
                await server.Streams.AddAsync(source).ConfigureAwait(false);
            }
            catch (StreamOpenException)
            {
                // refused: the event says why
            }
        })).ConfigureAwait(false);
        return server;
    }

    /// <summary>
    /// Queues an image for the inference worker; false (counted as a dropped frame of the item's origin) when the queue is
    /// full or the server is stopping. A queued item's <see cref="InferenceItem.Result"/> always completes.
    /// </summary>
    public bool TrySubmit(InferenceItem item)
    {
        if (Batcher.TryEnqueue(item)) return true;
        Metrics.DroppedFrames.WithLabels(item.Origin).Inc();
        return false;
    }

    /// <summary>
    /// Stops cleanly: the streams stop (their event and MJPEG watchers are let go); no new connections or requests; the
    /// requests in flight and every queued image are answered (the worker drains the queue); then the models and their
    /// exports are released. Idempotent.
    /// </summary>
    public async Task StopAsync(CancellationToken cancellation = default)
    {
        if (Interlocked.Exchange(ref stopping, 1) != 0)
        {
            await stopped.Task.ConfigureAwait(false);
            return;
        }
        try
        {
            events?.Invoke(new ServeEvent(ServeEventKind.Stopping, "stopping: answering the requests in flight", Models.Current));
            watcher?.Dispose();
            await Streams.StopAllAsync(TimeSpan.FromSeconds(10)).ConfigureAwait(false);   // their frames in flight are answered
            await app.StopAsync(cancellation).ConfigureAwait(false);   // the worker keeps answering the requests in flight meanwhile
            Batcher.Complete();
            if (Worker.IsStarted) await Worker.Completion.ConfigureAwait(false);
            Models.Dispose();
            backend.Dispose();
            await app.DisposeAsync().ConfigureAwait(false);
            events?.Invoke(new ServeEvent(ServeEventKind.Stopped, $"stopped after {Worker.Batches} batches"));
        }
        finally
        {
            stopped.TrySetResult();
        }
    }

    /// <summary>Tells the events' receiver (the CLI, a test) what happened.</summary>
    internal void Raise(ServeEvent e) => events?.Invoke(e);

    /// <summary>Same as <see cref="StopAsync"/>.</summary>
    public async ValueTask DisposeAsync() => await StopAsync().ConfigureAwait(false);

    WebApplication BuildApp()
    {
        var builder = WebApplication.CreateEmptyBuilder(new WebApplicationOptions());
        builder.WebHost.UseKestrelCore().ConfigureKestrel(kestrel =>
        {
            kestrel.AddServerHeader = false;
            kestrel.Limits.MaxRequestBodySize = Options.MaxBodyBytes;
            kestrel.Listen(Address(Options.Host), Options.Port);
        });
        builder.Services.AddRoutingCore();
        builder.Services.Configure<FormOptions>(form => form.MultipartBodyLengthLimit = Options.MaxBodyBytes);
        var web = builder.Build();
        ServeEndpoints.Map(web, this);
        return web;
    }

    static IPAddress Address(string host)
    {
        if (IPAddress.TryParse(host, out var address)) return address;
        if (host.Equals("localhost", StringComparison.OrdinalIgnoreCase)) return IPAddress.Loopback;
        var addresses = Dns.GetHostAddresses(host);
        return addresses.FirstOrDefault(a => a.AddressFamily == System.Net.Sockets.AddressFamily.InterNetwork) ?? addresses.FirstOrDefault()
            ?? throw new ArgumentException($"host={host}: no address found for it.");
    }
}
