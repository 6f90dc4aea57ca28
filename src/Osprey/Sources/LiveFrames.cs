using System.Runtime.ExceptionServices;
using OpenCvSharp;

namespace Osprey.Sources;

/// <summary>
/// One stream of a streams source read as Ultralytics' <c>LoadStreams</c> reads it: the first frame is read when the
/// stream is opened (a stream without one is an error), then a reader thread reads on continuously, every
/// <c>vid_stride</c>-th frame after the first (frames 1, 1 + s, 1 + 2s, …). With <c>stream_buffer=False</c> (the
/// default) only the newest frame is kept: frames that arrive while the predictor is busy replace the one waiting, so a
/// slow model predicts fewer frames than the camera sends, always the latest. With <c>stream_buffer=True</c> up to
/// <see cref="BufferFrames"/> frames wait in order and every one is predicted; the reader pauses while the buffer is full.
/// The stream ends when its source ends or breaks; the frames still waiting are taken first. A live network stream
/// (given a <see cref="Reconnection"/>) is reopened instead, as Ultralytics' reader reopens the URL after a failed read
/// (at once, and its stream ends when that reopening fails): here a second apart, for up to the given number of
/// attempts without a frame in between (an attempt that opens a stream which then fails before its first frame counts),
/// after which the stream ends and its summary says why. No black placeholder frames are made while it reconnects: a
/// batch of streams waits for it. Each frame is taken with its number in the stream and the moment it was read
/// (<see cref="TakeFrame"/>), for a server's frame numbers and end-to-end latency. Without a buffer, frames that arrive
/// encoded (MJPEG, <see cref="IEncodedFrames"/>) wait encoded and only the frame taken is decoded, in the taker's thread:
/// a slow predictor's dropped frames cost no decoding (16 cameras at 30 fps are 480 JPEG decodes a second otherwise).
/// </summary>
internal sealed class LiveFrames : IDisposable
{
    /// <summary>Frames a buffered stream holds at most (Ultralytics: 30).</summary>
    public const int BufferFrames = 30;

    private volatile IFrameSource source;
    private readonly Reconnection? reconnection;
    private readonly string name;
    private readonly int stride;
    private readonly bool buffer;
    private readonly Queue<WaitingFrame> waiting = new();
    private readonly object gate = new();
    private readonly Thread reader;
    private volatile bool running = true;
    private bool ended;
    private ExceptionDispatchInfo? failure;

    /// <param name="source">The stream; owned (disposed with this).</param>
    /// <param name="name">The stream's path or URL, for errors.</param>
    /// <param name="stride">vid_stride: after the first frame, every stride-th frame is kept.</param>
    /// <param name="buffer">stream_buffer: keep up to 30 frames and predict each (true), or only the newest (false).</param>
    /// <param name="reconnection">How to reopen the stream when it ends or breaks, or null to end with it.</param>
    public LiveFrames(IFrameSource source, string name, int stride, bool buffer, Reconnection? reconnection = null)
    {
        this.source = source;
        this.name = name;
        this.reconnection = reconnection;
        this.stride = stride;
        this.buffer = buffer;
        var first = new Mat();
        if (!source.Next(1, first))
        {
            first.Dispose();
            throw new InvalidDataException($"{name}: no frame could be read from this stream" +
                (source.Description is { Length: > 0 } d ? $" ({d})." : "."));
        }
        waiting.Enqueue(new WaitingFrame(first, null, null, 1, System.Diagnostics.Stopwatch.GetTimestamp()));
        Read = 1;
        reader = new Thread(ReadOn) { IsBackground = true, Name = "osprey stream reader" };
        reader.Start();
    }

    /// <summary>Frames read from the source (after vid_stride).</summary>
    public int Read { get; private set; }

    /// <summary>Frames read but replaced by a newer one before the predictor took them (stream_buffer=False).</summary>
    public int Dropped { get; private set; }

    /// <summary>Times the stream was reopened after it ended or broke.</summary>
    public int Reconnects { get; private set; }

    /// <summary>True while the stream is being reopened (it ended or broke and no frame came since).</summary>
    public bool Reconnecting => Volatile.Read(ref attempts) > 0;

    /// <summary>What the source is and how it ended (and how often it was reopened).</summary>
    public string Description
    {
        get
        {
            lock (gate)
            {
                string description = gaveUp ?? source.Description;
                return Reconnects == 0 ? description : $"{description}; reopened {Reconnects} time{(Reconnects > 1 ? "s" : "")}";
            }
        }
    }

    private string? gaveUp;       // why the stream was not reopened (under the gate)
    private int attempts;         // reopening attempts since the last frame (the reader's own)
    private volatile bool opening; // the reader is inside Reconnection.Open, which Stop cannot interrupt
    private int disposed;

    /// <summary>
    /// The next frame to predict, which the caller disposes: the oldest waiting one with a buffer, else the newest (the
    /// older ones are dropped). Waits while none is there; null once the stream has ended and none is left. An error of
    /// the reader (a stream that is not what it claimed) is thrown here.
    /// </summary>
    public Mat? Take() => TakeFrame()?.Image;

    /// <summary><see cref="Take"/> with the frame's number and the moment it was read.</summary>
    public LiveFrame? TakeFrame()
    {
        while (true)
        {
            WaitingFrame next;
            lock (gate)
            {
                while (waiting.Count == 0 && !ended) Monitor.Wait(gate);
                if (waiting.Count == 0)
                {
                    failure?.Throw();
                    return null;
                }
                next = waiting.Dequeue();
                Monitor.PulseAll(gate); // room in the buffer
            }
            if (next.Image is { } image) return new LiveFrame(image, next.Number, next.Received);
            var decoded = new Mat();    // decoded here, outside the gate: the reader goes on meanwhile
            if (next.Decoder!.Decode(next.Encoded!, decoded)) return new LiveFrame(decoded, next.Number, next.Received);
            decoded.Dispose();          // not an image (counted by the source): the next frame
        }
    }

    /// <summary>Stops the reader and releases the source and the frames still waiting; a second call does nothing.</summary>
    public void Dispose()
    {
        if (Interlocked.Exchange(ref disposed, 1) != 0) return;
        lock (gate)
        {
            running = false;
            Monitor.PulseAll(gate);
        }
        source.Stop(); // a reader blocked on the network returns at once
        // A reader inside Open (a connect or a first response can take many seconds) is left to finish: it sees the stream
        // stopped and disposes what it opened; the source here is not the one it uses.
        while (!reader.Join(50) && !opening) { }
        lock (gate)
        {
            source.Dispose();
            foreach (var frame in waiting) frame.Image?.Dispose();  // under the gate: a Take in another thread may be dequeuing
            waiting.Clear();
        }
    }

    // Reopens the stream after it ended or broke (why): waits the delay, then tries. Every attempt, one that opens a stream
    // which then yields no frame included, counts until a frame arrives; after the policy's attempts the stream ends.
    // True with a new source in place; false when stopped or out of attempts (the stream then ends, saying why).
    private bool Reopen(string why)
    {
        var policy = reconnection!;
        string last = why;
        while (attempts < policy.Attempts)
        {
            Interlocked.Increment(ref attempts);
            var waited = System.Diagnostics.Stopwatch.StartNew();
            lock (gate)
            {
                // the whole delay (Take pulses the gate too); Dispose ends it
                while (running && waited.Elapsed < policy.Delay) Monitor.Wait(gate, policy.Delay - waited.Elapsed);
                if (!running) return false;
            }
            IFrameSource fresh;
            opening = true;
            try
            {
                fresh = policy.Open();
            }
            catch (Exception e)
            {
                last = e.Message;
                continue;
            }
            finally
            {
                opening = false;
            }
            lock (gate)
            {
                if (!running)
                {
                    fresh.Dispose();
                    return false;
                }
                var old = source;
                source = fresh;
                Reconnects++;
                old.Dispose();
            }
            return true;
        }
        lock (gate)
            gaveUp = $"{why}; not reopened after {policy.Attempts} attempt{(policy.Attempts > 1 ? "s" : "")} {policy.Delay.TotalSeconds:0.#} s apart ({last})";
        return false;
    }

    // The source's next frame (numbered by the caller), still encoded when it can wait so (no buffer, an encoded source); null at its end.
    private WaitingFrame? ReadNext()
    {
        var current = source;
        long now;
        if (!buffer && current is IEncodedFrames encoded)
        {
            var bytes = encoded.NextEncoded(stride);
            now = System.Diagnostics.Stopwatch.GetTimestamp();
            return bytes is null ? null : new WaitingFrame(null, bytes, encoded, 0, now);
        }
        var frame = new Mat();
        try
        {
            bool more = current.Next(stride, frame);
            now = System.Diagnostics.Stopwatch.GetTimestamp();
            if (more) return new WaitingFrame(frame, null, null, 0, now);
        }
        catch
        {
            frame.Dispose();
            throw;
        }
        frame.Dispose();
        return null;
    }

    // Ultralytics' LoadStreams.update: read while running; with a buffer, wait while it is full.
    private void ReadOn()
    {
        try
        {
            while (true)
            {
                lock (gate)
                {
                    while (running && buffer && waiting.Count >= BufferFrames) Monitor.Wait(gate);
                    if (!running) return;
                }
                WaitingFrame? frame;
                try
                {
                    frame = ReadNext(); // blocks on the source, outside the lock
                }
                catch (Exception e) when (reconnection is not null && running)
                {
                    if (Reopen(e.Message)) continue;    // the attempts without a frame bound it
                    return;
                }
                if (frame is null && reconnection is not null && running)
                {
                    if (Reopen(source.Description)) continue;
                    return;
                }
                lock (gate)
                {
                    if (frame is null || !running)
                    {
                        frame?.Image?.Dispose();
                        return;
                    }
                    Read++;
                    Volatile.Write(ref attempts, 0);    // a frame: the stream works again
                    if (!buffer)
                        while (waiting.Count > 0)
                        {
                            waiting.Dequeue().Image?.Dispose();
                            Dropped++;
                        }
                    waiting.Enqueue(frame with { Number = Read });
                    Monitor.PulseAll(gate);
                }
            }
        }
        catch (Exception e) // thrown again to the predictor by Take; a reader thread must not bring the process down
        {
            lock (gate) failure = ExceptionDispatchInfo.Capture(e);
        }
        finally
        {
            lock (gate)
            {
                ended = true;
                Monitor.PulseAll(gate);
            }
        }
    }
}

/// <summary>A frame waiting in <see cref="LiveFrames"/>: decoded (<paramref name="Image"/>), or encoded with the source that decodes it.</summary>
internal sealed record WaitingFrame(Mat? Image, byte[]? Encoded, IEncodedFrames? Decoder, int Number, long Received);

/// <summary>A frame of a <see cref="LiveFrames"/> stream.</summary>
/// <param name="Image">The BGR frame (the taker disposes it).</param>
/// <param name="Number">Its number among the frames read from the stream (1 = the first; after vid_stride).</param>
/// <param name="Received">When it was read (<see cref="System.Diagnostics.Stopwatch.GetTimestamp"/>).</param>
internal sealed record LiveFrame(Mat Image, int Number, long Received);

/// <summary>How <see cref="LiveFrames"/> reopens a live stream that ended or broke.</summary>
/// <param name="Open">Opens the stream again (throws when it cannot).</param>
/// <param name="Attempts">Attempts without a frame in between before the stream ends.</param>
/// <param name="Delay">The wait before each attempt.</param>
internal sealed record Reconnection(Func<IFrameSource> Open, int Attempts, TimeSpan Delay)
{
    /// <summary>Reopening attempts without a frame before a live stream ends (default 30, one second apart; 0: end with
    /// the stream).</summary>
    public const string Variable = "OSPREY_STREAM_RECONNECT";

    /// <summary>Attempts when <see cref="Variable"/> is not set.</summary>
    public const int DefaultAttempts = 30;

    /// <summary>How <paramref name="url"/> is reopened (<see cref="Variable"/>), or null when it is not.</summary>
    public static Reconnection? For(string url) => AttemptsOf(Environment.GetEnvironmentVariable(Variable)) is > 0 and var attempts
        ? new(() => FrameSources.Open(url), attempts, TimeSpan.FromSeconds(1))
        : null;

    /// <summary><see cref="Variable"/>'s value as attempts.</summary>
    /// <exception cref="Config.ArgumentsException">Not a whole number ≥ 0.</exception>
    public static int AttemptsOf(string? text) => string.IsNullOrWhiteSpace(text) ? DefaultAttempts
        : int.TryParse(text.Trim(), System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out int n) ? n
        : throw new Config.ArgumentsException($"{Variable}={text}: expected a whole number of attempts (0: do not reopen a stream)");
}
