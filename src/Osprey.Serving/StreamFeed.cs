using System.Threading.Channels;

namespace Osprey.Serving;

/// <summary>One message of a stream's Server-Sent Events: <c>event: {Event}</c> (none for a frame's result) and one <c>data:</c> line.</summary>
/// <param name="Event">null for a frame's result; "error" for the last message of a stream that failed or ended.</param>
/// <param name="Data">The JSON (one line).</param>
public readonly record struct StreamMessage(string? Event, string Data);

/// <summary>An annotated frame of a stream's MJPEG out.</summary>
/// <param name="Jpeg">The JPEG bytes.</param>
/// <param name="Frame">The frame's number in the stream.</param>
public sealed record AnnotatedFrame(byte[] Jpeg, int Frame);

/// <summary>
/// What a stream sends its watchers: every result as a <see cref="StreamMessage"/> to each Server-Sent-Events subscriber
/// (a bounded queue each: a subscriber that cannot keep up loses its oldest messages, the stream never waits for it) and
/// the newest annotated frame to each MJPEG viewer (a viewer that is slower than the stream skips frames). The stream
/// draws annotated frames only while someone views them (<see cref="HasViewers"/>). After <see cref="End"/> a subscriber
/// gets the error message and the end; after <see cref="Close"/> just the end. Thread-safe.
/// </summary>
public sealed class StreamFeed
{
    /// <summary>Messages a subscriber may have unread before its oldest are dropped.</summary>
    public const int SubscriberQueue = 256;

    readonly object gate = new();
    readonly List<Channel<StreamMessage>> subscribers = new();
    StreamMessage? final;
    bool closed;
    AnnotatedFrame? newest;
    long version;
    TaskCompletionSource next = new(TaskCreationOptions.RunContinuationsAsynchronously);
    int viewers;

    /// <summary>True while at least one MJPEG viewer is connected.</summary>
    public bool HasViewers => Volatile.Read(ref viewers) > 0;

    /// <summary>Server-Sent-Events subscribers connected now.</summary>
    public int Subscribers
    {
        get { lock (gate) return subscribers.Count; }
    }

    /// <summary>
    /// A new subscriber's messages, from the next result on (a feed that has ended gives its error message, if any, and
    /// ends). Dispose the subscription to leave.
    /// </summary>
    public Subscription Subscribe()
    {
        var channel = Channel.CreateBounded<StreamMessage>(new BoundedChannelOptions(SubscriberQueue)
        {
            FullMode = BoundedChannelFullMode.DropOldest, SingleReader = true, SingleWriter = false,
        });
        lock (gate)
        {
            if (closed)
            {
                if (final is { } message) channel.Writer.TryWrite(message);
                channel.Writer.TryComplete();
            }
            else subscribers.Add(channel);
        }
        return new Subscription(this, channel);
    }

    /// <summary>Sends a result to every subscriber.</summary>
    public void Publish(StreamMessage message)
    {
        lock (gate)
            foreach (var channel in subscribers) channel.Writer.TryWrite(message);   // DropOldest: never refused
    }

    /// <summary>Makes <paramref name="frame"/> the newest annotated frame; waiting viewers get it.</summary>
    public void Publish(AnnotatedFrame frame)
    {
        TaskCompletionSource wake;
        lock (gate)
        {
            newest = frame;
            version++;
            wake = next;
            next = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        }
        wake.TrySetResult();
    }

    /// <summary>The stream failed or ended: every subscriber (and every later one) gets <paramref name="error"/>, then the end.</summary>
    public void End(StreamMessage error) => Finish(error);

    /// <summary>The stream was removed or the server stops: subscribers and viewers are let go without a message.</summary>
    public void Close() => Finish(null);

    void Finish(StreamMessage? message)
    {
        TaskCompletionSource wake;
        lock (gate)
        {
            if (closed) return;
            closed = true;
            final = message;
            foreach (var channel in subscribers)
            {
                if (message is { } m) channel.Writer.TryWrite(m);
                channel.Writer.TryComplete();
            }
            subscribers.Clear();
            wake = next;
        }
        wake.TrySetResult();
    }

    /// <summary>
    /// The annotated frames for one MJPEG viewer: the newest at once if there is one, then each newer one as it comes
    /// (skipping those drawn while the viewer was still sending); ends when the feed does.
    /// </summary>
    public async IAsyncEnumerable<AnnotatedFrame> Frames([System.Runtime.CompilerServices.EnumeratorCancellation] CancellationToken cancellation)
    {
        Interlocked.Increment(ref viewers);
        try
        {
            long seen = 0;
            while (true)
            {
                AnnotatedFrame? frame;
                long current;
                Task wait;
                bool done;
                lock (gate)
                {
                    (frame, current, wait, done) = (newest, version, next.Task, closed);
                }
                if (frame is not null && current > seen)
                {
                    seen = current;
                    yield return frame;
                    continue;
                }
                if (done) yield break;
                await wait.WaitAsync(cancellation).ConfigureAwait(false);
            }
        }
        finally
        {
            Interlocked.Decrement(ref viewers);
        }
    }

    void Leave(Channel<StreamMessage> channel)
    {
        lock (gate) subscribers.Remove(channel);
        channel.Writer.TryComplete();
    }

    /// <summary>One subscriber's messages; disposing it leaves the feed.</summary>
    public sealed class Subscription : IDisposable
    {
        readonly StreamFeed feed;
        readonly Channel<StreamMessage> channel;

        internal Subscription(StreamFeed feed, Channel<StreamMessage> channel)
        {
            this.feed = feed;
            this.channel = channel;
        }

        /// <summary>The messages, in order; completes when the feed ends or closes.</summary>
        public ChannelReader<StreamMessage> Reader => channel.Reader;

        /// <summary>Leaves the feed.</summary>
        public void Dispose() => feed.Leave(channel);
    }
}
