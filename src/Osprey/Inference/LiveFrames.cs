using System.Runtime.ExceptionServices;
using OpenCvSharp;

namespace Osprey.Inference;

/// <summary>
/// One stream of a streams source read as Ultralytics' <c>LoadStreams</c> reads it: the first frame is read when the
/// stream is opened (a stream without one is an error), then a reader thread reads on continuously, every
/// <c>vid_stride</c>-th frame after the first (frames 1, 1 + s, 1 + 2s, …). With <c>stream_buffer=False</c> (the
/// default) only the newest frame is kept: frames that arrive while the predictor is busy replace the one waiting, so a
/// slow model predicts fewer frames than the camera sends, always the latest. With <c>stream_buffer=True</c> up to
/// <see cref="BufferFrames"/> frames wait in order and every one is predicted; the reader pauses while the buffer is full.
/// The stream ends when its source ends or breaks; the frames still waiting are taken first.
/// </summary>
internal sealed class LiveFrames : IDisposable
{
    /// <summary>Frames a buffered stream holds at most (Ultralytics: 30).</summary>
    public const int BufferFrames = 30;

    private readonly IFrameSource source;
    private readonly int stride;
    private readonly bool buffer;
    private readonly Queue<Mat> waiting = new();
    private readonly object gate = new();
    private readonly Thread reader;
    private bool running = true;
    private bool ended;
    private ExceptionDispatchInfo? failure;

    /// <param name="source">The stream; owned (disposed with this).</param>
    /// <param name="name">The stream's path or URL, for errors.</param>
    /// <param name="stride">vid_stride: after the first frame, every stride-th frame is kept.</param>
    /// <param name="buffer">stream_buffer: keep up to 30 frames and predict each (true), or only the newest (false).</param>
    public LiveFrames(IFrameSource source, string name, int stride, bool buffer)
    {
        this.source = source;
        this.stride = stride;
        this.buffer = buffer;
        var first = new Mat();
        if (!source.Next(1, first))
        {
            first.Dispose();
            throw new InvalidDataException($"{name}: no frame could be read from this stream" +
                (source.Description is { Length: > 0 } d ? $" ({d})." : "."));
        }
        waiting.Enqueue(first);
        Read = 1;
        reader = new Thread(ReadOn) { IsBackground = true, Name = "osprey stream reader" };
        reader.Start();
    }

    /// <summary>Frames read from the source (after vid_stride).</summary>
    public int Read { get; private set; }

    /// <summary>Frames read but replaced by a newer one before the predictor took them (stream_buffer=False).</summary>
    public int Dropped { get; private set; }

    /// <summary>What the source is and how it ended.</summary>
    public string Description => source.Description;

    /// <summary>
    /// The next frame to predict, which the caller disposes: the oldest waiting one with a buffer, else the newest (the
    /// older ones are dropped). Waits while none is there; null once the stream has ended and none is left. An error of
    /// the reader (a stream that is not what it claimed) is thrown here.
    /// </summary>
    public Mat? Take()
    {
        lock (gate)
        {
            while (waiting.Count == 0 && !ended) Monitor.Wait(gate);
            if (waiting.Count == 0)
            {
                failure?.Throw();
                return null;
            }
            var frame = waiting.Dequeue();
            Monitor.PulseAll(gate); // room in the buffer
            return frame;
        }
    }

    public void Dispose()
    {
        lock (gate)
        {
            running = false;
            Monitor.PulseAll(gate);
        }
        source.Stop(); // a reader blocked on the network returns at once
        reader.Join();
        source.Dispose();
        foreach (var frame in waiting) frame.Dispose();
        waiting.Clear();
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
                var frame = new Mat();
                bool more = source.Next(stride, frame); // blocks on the source, outside the lock
                lock (gate)
                {
                    if (!more || !running)
                    {
                        frame.Dispose();
                        return;
                    }
                    Read++;
                    if (!buffer)
                        while (waiting.Count > 0)
                        {
                            waiting.Dequeue().Dispose();
                            Dropped++;
                        }
                    waiting.Enqueue(frame);
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
