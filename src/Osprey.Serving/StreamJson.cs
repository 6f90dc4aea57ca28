namespace Osprey.Serving;

/// <summary>
/// The JSON of the stream routes: a stream's description (<c>GET /v1/streams</c>), a frame's result (one Server-Sent
/// Event: the detection JSON of <c>POST /v1/detect</c> plus the stream, the frame's number, when it was read and when
/// its result was sent) and the error event that ends a stream's events.
/// </summary>
public static class StreamJson
{
    /// <summary>A stream as <c>GET /v1/streams</c> lists it.</summary>
    public static StreamInfoJson Info(LiveStream stream)
    {
        var (fps, latency) = stream.Pace;
        return new StreamInfoJson(stream.Id, stream.Source, stream.State.ToString().ToLowerInvariant(), stream.Error, Math.Round(fps, 2),
            latency is { } ms ? Math.Round(ms, 1) : null, stream.Frames, stream.Read, stream.Dropped, stream.Reconnects, stream.AddedAt,
            $"/v1/streams/{stream.Id}/events", $"/v1/streams/{stream.Id}/mjpeg");
    }

    /// <summary>One frame's result.</summary>
    public static StreamFrameJson Frame(string stream, int frame, DateTimeOffset receivedAt, DateTimeOffset sentAt, TimeSpan latency, InferenceResult result)
    {
        var detect = ServeJson.Detect(result);
        return new StreamFrameJson(stream, frame, receivedAt, sentAt, Math.Round(latency.TotalMilliseconds, 3), detect.Model, detect.Image,
            detect.Detections, detect.Speed);
    }
}

/// <summary>
/// A stream: id, source, state (connecting, running, reconnecting, ended, failed, stopped), why it failed or ended,
/// results per second and mean latency in ms over the last 3 s, frames predicted, read and dropped, reopenings, when it
/// was added, and its two outputs' paths.
/// </summary>
public sealed record StreamInfoJson(string Id, string Source, string State, string? Error, double Fps, double? LatencyMs, long Frames, int Read,
    long Dropped, int Reconnects, DateTimeOffset AddedAt, string Events, string Mjpeg);

/// <summary>
/// One frame's result: the stream, the frame's number in it, when the frame was read and when the result was sent (UTC),
/// the time between in ms, then <c>POST /v1/detect</c>'s <c>model</c>, <c>image</c>, <c>detections</c> and <c>speed</c>.
/// </summary>
public sealed record StreamFrameJson(string Stream, int Frame, DateTimeOffset ReceivedAt, DateTimeOffset SentAt, double LatencyMs, ModelRef Model,
    ImageSize Image, IReadOnlyList<DetectionJson> Detections, Speed Speed);

/// <summary>The last event of a stream that failed or ended: the stream, what happened (naming the source), frames predicted.</summary>
public sealed record StreamErrorJson(string Stream, string Error, long Frames);

/// <summary><c>POST /v1/streams</c>'s body: <c>{"source": "URL or path"}</c>.</summary>
public sealed record AddStreamRequest(string? Source);
