using System.Text.RegularExpressions;
using Osprey.Inference;

namespace Osprey.Serving;

/// <summary>
/// A server's streams: added from <c>source=</c> at start or by <c>POST /v1/streams</c>, removed by
/// <c>DELETE /v1/streams/{id}</c>, listed in the order added. An add waits for the stream's first frame and is refused
/// (<see cref="StreamOpenException"/>, nothing listed) when there is none; a stream that fails or ends later stays listed
/// with its state and error until removed. Ids come from the source's name (Ultralytics' <c>clean_str</c> file name, as
/// predict names a stream's outputs: <c>http://host:8080/cam</c> → <c>cam</c>), made unique, and are never reused.
/// </summary>
public sealed partial class StreamHub
{
    readonly OspreyServer server;
    readonly object gate = new();
    readonly List<LiveStream> streams = new();
    readonly HashSet<string> used = new(StringComparer.Ordinal) { "request" };   // the origin of /v1/detect's images

    internal StreamHub(OspreyServer server) => this.server = server;

    /// <summary>The streams, in the order added (those still opening included).</summary>
    public IReadOnlyList<LiveStream> All
    {
        get { lock (gate) return streams.ToArray(); }
    }

    /// <summary>The stream with this id, or null.</summary>
    public LiveStream? Find(string id)
    {
        lock (gate) return streams.FirstOrDefault(s => s.Id == id);
    }

    /// <summary>Adds a stream and waits for its first frame (at most <see cref="ServeOptions.StreamOpenTimeout"/>).</summary>
    /// <exception cref="StreamOpenException">No source, too many streams, the server stops, or the source cannot be read; the message names it.</exception>
    public async Task<LiveStream> AddAsync(string? source)
    {
        if (string.IsNullOrWhiteSpace(source)) throw new StreamOpenException(400, "no source given: expected a stream URL (MJPEG over HTTP, RTSP) or a video path.");
        source = source.Trim();
        LiveStream stream;
        lock (gate)
        {
            if (server.IsStopping) throw new StreamOpenException(503, "the server is stopping.");
            if (streams.Count >= server.Options.MaxStreams)
                throw new StreamOpenException(409, $"{source}: the server has {streams.Count} streams, its limit ({nameof(ServeOptions.MaxStreams)}): remove one first.");
            stream = new LiveStream(server, NewId(source), source);
            streams.Add(stream);
        }
        try
        {
            await stream.OpenAsync(server.Options.StreamOpenTimeout).ConfigureAwait(false);
        }
        catch (StreamOpenException e)
        {
            lock (gate) streams.Remove(stream);
            server.Raise(new ServeEvent(ServeEventKind.StreamRefused, e.Message, server.Models.Current));
            throw;
        }
        server.Raise(new ServeEvent(ServeEventKind.StreamAdded, $"stream {stream.Id}: {source}", server.Models.Current));
        return stream;
    }

    /// <summary>Stops and removes a stream; null when there is none with this id.</summary>
    public async Task<LiveStream?> RemoveAsync(string id)
    {
        LiveStream? stream;
        lock (gate)
        {
            stream = streams.FirstOrDefault(s => s.Id == id);
            if (stream is null) return null;
            streams.Remove(stream);
        }
        await Task.Run(stream.Stop).ConfigureAwait(false);   // joins the reader thread
        server.Raise(new ServeEvent(ServeEventKind.StreamRemoved, $"stream {stream.Id} removed ({stream.Source})", server.Models.Current));
        return stream;
    }

    /// <summary>Stops every stream and waits (at most <paramref name="wait"/>) for their pumps to end; they stay listed.</summary>
    internal async Task StopAllAsync(TimeSpan wait)
    {
        var all = All;
        await Task.WhenAll(all.Select(s => Task.Run(s.Stop))).ConfigureAwait(false);
        try
        {
            await Task.WhenAll(all.Select(s => s.Completion)).WaitAsync(wait).ConfigureAwait(false);
        }
        catch (TimeoutException)
        {
            // a pump still blocked opening a silent source: it disposes what it opens when that returns
        }
    }

    // clean_str's file name, kept to URL-safe characters, unique among every id this hub gave.
    string NewId(string source)
    {
        string name = Path.GetFileName(PredictSource.CleanName(source).TrimEnd('/', '\\'));
        name = Unsafe().Replace(name, "_");
        if (name.Length > 48) name = name[..48];
        if (name.Trim('.').Length == 0) name = "stream";
        string id = name;
        for (int k = 2; !used.Add(id); k++) id = $"{name}-{k}";
        return id;
    }

    [GeneratedRegex("[^A-Za-z0-9._-]")]
    private static partial Regex Unsafe();
}
