using System.Diagnostics;
using System.Text.Json;
using OpenCvSharp;
using Osprey.Sources;

namespace Osprey.Serving;

/// <summary>Where a <see cref="LiveStream"/> is.</summary>
public enum StreamState
{
    /// <summary>Opening the source; no frame yet.</summary>
    Connecting,

    /// <summary>Frames come and are predicted.</summary>
    Running,

    /// <summary>The source ended or broke and is being reopened (the reconnect rules of <c>predict</c>).</summary>
    Reconnecting,

    /// <summary>The source ended (a file's end, a live stream not reopened in time); the error says how.</summary>
    Ended,

    /// <summary>The source failed (not a stream Osprey can read); the error says why.</summary>
    Failed,

    /// <summary>Removed, or the server stops.</summary>
    Stopped,
}

/// <summary>A stream that could not be added: the HTTP status that answers it and a message naming the source and the problem.</summary>
/// <param name="statusCode">400 (no source), 404 (no such file), 409 (too many streams), 422 (not a stream Osprey can read, or no frame in time), 503 (stopping).</param>
/// <param name="message">What is wrong, naming the source.</param>
/// <param name="inner">The reader's exception, if any.</param>
public sealed class StreamOpenException(int statusCode, string message, Exception? inner = null) : Exception(message, inner)
{
    /// <summary>The HTTP status that answers it.</summary>
    public int StatusCode { get; } = statusCode;
}

/// <summary>
/// One stream of a server: read by <c>predict</c>'s readers (<see cref="FrameSources.Open"/>: video files, MJPEG over
/// HTTP, RTSP; <see cref="LiveFrames"/>: a reader thread, the newest frame or a buffer, the reconnect rules) and pumped by
/// a thread of its own through the server's shared batcher: it takes the newest frame, queues it
/// (<see cref="OspreyServer.TrySubmit"/>, the stream's id as origin), waits for its result, sends it to the
/// <see cref="Feed"/>, and takes the newest frame again — at most one frame in flight, so a slow model drops frames
/// (counted in <c>osprey_dropped_frames_total{source=id}</c>) and never falls behind. When the source fails or ends the
/// feed's subscribers get an <c>error</c> message saying so.
/// </summary>
public sealed class LiveStream
{
    readonly OspreyServer server;
    readonly Thread pump;
    readonly TaskCompletionSource opened = new(TaskCreationOptions.RunContinuationsAsynchronously);
    readonly TaskCompletionSource finished = new(TaskCreationOptions.RunContinuationsAsynchronously);
    readonly StreamStats stats = new();
    readonly object gate = new();
    LiveFrames? frames;
    volatile bool stopping;
    StreamState state = StreamState.Connecting;
    string? error;
    long processed, dropped;
    int countedDrops;   // the reader's drops already counted (the pump's own)

    internal LiveStream(OspreyServer server, string id, string source)
    {
        this.server = server;
        Id = id;
        Source = source;
        pump = new Thread(Run) { IsBackground = true, Name = $"osprey stream {id}" };
    }

    /// <summary>The stream's id: its URLs' segment and the <c>source</c> label of its metrics.</summary>
    public string Id { get; }

    /// <summary>The URL or path it reads.</summary>
    public string Source { get; }

    /// <summary>When it was added.</summary>
    public DateTimeOffset AddedAt { get; } = DateTimeOffset.UtcNow;

    /// <summary>Its results (Server-Sent Events) and annotated frames (MJPEG).</summary>
    public StreamFeed Feed { get; } = new();

    /// <summary>Where it is now.</summary>
    public StreamState State
    {
        get
        {
            lock (gate) return state == StreamState.Running && frames is { Reconnecting: true } ? StreamState.Reconnecting : state;
        }
    }

    /// <summary>Why it failed or ended, or the last inference failure; null while all is well.</summary>
    public string? Error
    {
        get { lock (gate) return error; }
    }

    /// <summary>Frames predicted and sent.</summary>
    public long Frames => Interlocked.Read(ref processed);

    /// <summary>Frames read but not predicted: replaced by a newer one while the last was in flight, or refused by a full queue.</summary>
    public long Dropped => Interlocked.Read(ref dropped);

    /// <summary>Frames read from the source.</summary>
    public int Read => Volatile.Read(ref frames)?.Read ?? 0;

    /// <summary>Times the source was reopened.</summary>
    public int Reconnects => Volatile.Read(ref frames)?.Reconnects ?? 0;

    /// <summary>Results per second and mean end-to-end latency (frame read → result sent) over the last seconds (<see cref="StreamStats.Window"/>).</summary>
    public (double Fps, double? LatencyMs) Pace => stats.Measure(Stopwatch.GetTimestamp());

    /// <summary>Completes when the pump thread has ended.</summary>
    public Task Completion => finished.Task;

    /// <summary>Starts the pump and waits until the first frame is read.</summary>
    /// <exception cref="StreamOpenException">The source cannot be opened or sent no frame within <paramref name="timeout"/>.</exception>
    internal async Task OpenAsync(TimeSpan timeout)
    {
        pump.Start();
        try
        {
            await opened.Task.WaitAsync(timeout).ConfigureAwait(false);
        }
        catch (TimeoutException)
        {
            // the reader may stay blocked far longer (a silent server): it is left to finish and dispose what it opened
            var late = new StreamOpenException(422, $"{Source}: no frame within {timeout.TotalSeconds:0.#} s: the source does not answer, " +
                "or answers without sending a frame.");
            if (Fail(late)) throw late;
            await opened.Task.ConfigureAwait(false);   // it opened meanwhile (or failed on its own)
        }
    }

    /// <summary>Stops reading (a reader blocked on the network returns at once) and lets the feed's watchers go.</summary>
    internal void Stop()
    {
        stopping = true;
        opened.TrySetException(new StreamOpenException(503, $"{Source}: the stream was removed while it opened."));
        lock (gate)
            if (state is StreamState.Connecting or StreamState.Running) state = StreamState.Stopped;
        Volatile.Read(ref frames)?.Dispose();   // wakes the pump's Take; the pump disposes it again (a no-op)
        Feed.Close();
    }

    void Run()
    {
        LiveFrames? live = null;
        try
        {
            live = Open();
            lock (gate)
            {
                frames = live;
                if (state == StreamState.Connecting) state = StreamState.Running;
            }
            if (!opened.TrySetResult() || stopping) return;   // given up on meanwhile (timed out, removed)
            Pump(live);
        }
        catch (StreamOpenException e)
        {
            Fail(e);
        }
        catch (Exception e)   // the reader's error, thrown again by Take: not a stream it can read after all
        {
            Finish(StreamState.Failed, e.Message.Contains(Source, StringComparison.Ordinal) ? e.Message : $"{Source}: {e.Message}");
        }
        finally
        {
            live?.Dispose();
            finished.TrySetResult();
        }
    }

    // The source and its first frame; any failure is a StreamOpenException naming the source.
    LiveFrames Open()
    {
        var options = server.Options;
        IFrameSource source;
        try
        {
            source = FrameSources.Open(Source);
        }
        catch (Exception e)
        {
            throw new StreamOpenException(e is FileNotFoundException or DirectoryNotFoundException ? 404 : 422, Named(e), e);
        }
        try
        {
            var reconnection = !source.IsLive ? null
                : options.StreamReconnects is { } attempts ? (attempts > 0 ? new Reconnection(() => FrameSources.Open(Source), attempts, options.StreamReconnectDelay) : null)
                : Reconnection.For(Source);
            return new LiveFrames(source, Source, options.VidStride, options.StreamBuffer, reconnection);
        }
        catch (Exception e)
        {
            source.Dispose();
            throw new StreamOpenException(422, Named(e), e);
        }
    }

    string Named(Exception e) => e.Message.Contains(Source, StringComparison.Ordinal) ? e.Message : $"{Source}: {e.Message}";

    void Pump(LiveFrames live)
    {
        while (!stopping)
        {
            var frame = live.TakeFrame();
            CountDrops(live);
            if (frame is null)
            {
                string how = live.Description is { Length: > 0 } description ? $" ({description})" : "";
                if (!stopping) Finish(StreamState.Ended, $"{Source}: the stream ended{how}.");
                return;
            }
            using (frame.Image)
            {
                if (stopping) return;
                var item = new InferenceItem(frame.Image, Id);
                if (!server.TrySubmit(item))             // a full queue: dropped (and counted); the next frame tries again
                {
                    if (server.Batcher.IsCompleted) return;
                    Interlocked.Increment(ref dropped);
                    continue;
                }
                InferenceResult result;
                try
                {
                    result = item.Result.GetAwaiter().GetResult();   // the image must outlive the batch that reads it
                }
                catch (Exception e)
                {
                    lock (gate) error = $"inference failed on frame {frame.Number}: {e.Message}";
                    continue;
                }
                Publish(frame, result);
            }
        }
    }

    void CountDrops(LiveFrames live)
    {
        int delta = live.Dropped - countedDrops;
        if (delta <= 0) return;
        countedDrops += delta;
        Interlocked.Add(ref dropped, delta);
        server.Metrics.DroppedFrames.WithLabels(Id).Inc(delta);
    }

    void Publish(LiveFrame frame, InferenceResult result)
    {
        long now = Stopwatch.GetTimestamp();
        var latency = Stopwatch.GetElapsedTime(frame.Received, now);
        var sentAt = DateTimeOffset.UtcNow;
        stats.Record(now, latency);
        Interlocked.Increment(ref processed);
        server.Metrics.StreamLatency.WithLabels(Id).Observe(latency.TotalSeconds);
        var json = StreamJson.Frame(Id, frame.Number, sentAt - latency, sentAt, latency, result);
        Feed.Publish(new StreamMessage(null, JsonSerializer.Serialize(json, ServeJson.Options)));
        if (!Feed.HasViewers) return;                     // drawn only while someone watches
        using var plotted = result.Prediction.Plot(frame.Image);
        Feed.Publish(new AnnotatedFrame(plotted.ImEncode(".jpg", new ImageEncodingParam(ImwriteFlags.JpegQuality, 80)), frame.Number));
    }

    // A failed open: the waiting add gets the exception (unless it gave up already); true when this call decided it.
    bool Fail(StreamOpenException e)
    {
        if (!opened.TrySetException(e)) return false;
        stopping = true;
        lock (gate)
        {
            state = StreamState.Failed;
            error = e.Message;
        }
        Feed.Close();
        return true;
    }

    void Finish(StreamState final, string message)
    {
        lock (gate)
        {
            if (state == StreamState.Stopped) return;
            state = final;
            error = message;
        }
        Feed.End(new StreamMessage("error", JsonSerializer.Serialize(new StreamErrorJson(Id, message, Frames), ServeJson.Options)));
        server.Raise(new ServeEvent(final == StreamState.Ended ? ServeEventKind.StreamEnded : ServeEventKind.StreamFailed,
            $"stream {Id}: {message}", server.Models.Current));
    }
}
