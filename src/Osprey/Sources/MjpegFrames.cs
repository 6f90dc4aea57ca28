using System.Net.Http.Headers;
using OpenCvSharp;

namespace Osprey.Sources;

/// <summary>
/// An MJPEG stream over HTTP (<c>multipart/x-mixed-replace; boundary=…</c>, the IP-camera stream that OpenCV's FFmpeg
/// reads for Ultralytics): each part is one JPEG, decoded with <c>imdecode</c> — at once (<see cref="Next"/>), or later and
/// only if wanted (<see cref="NextEncoded"/>, <see cref="Decode"/>). Frames come until the server closes the stream or
/// stays silent for <see cref="HttpSource.Silence"/>; a part OpenCV cannot decode is skipped and counted.
/// </summary>
internal sealed class MjpegFrames : IFrameSource, IEncodedFrames
{
    private readonly HttpResponseMessage response;
    private readonly Stream body;
    private readonly MultipartReader reader;
    private readonly CancellationTokenSource stop = new();
    private int skipped;
    private string ending = "the server closed the stream";

    public MjpegFrames(string url, HttpResponseMessage response)
    {
        string boundary = Boundary(response.Content.Headers.ContentType)
            ?? throw new InvalidDataException($"{url}: multipart/x-mixed-replace without a boundary= parameter, so its frames cannot be told apart.");
        this.response = response;
        body = response.Content.ReadAsStream();
        reader = new MultipartReader(Read, boundary);
    }

    /// <summary>True when the response is an MJPEG (multipart/x-mixed-replace) stream.</summary>
    public static bool IsMjpeg(HttpResponseMessage response) =>
        string.Equals(response.Content.Headers.ContentType?.MediaType, "multipart/x-mixed-replace", StringComparison.OrdinalIgnoreCase);

    public string Description => Volatile.Read(ref skipped) is var n and > 0
        ? $"MJPEG over HTTP, {ending}, {n} part{(n > 1 ? "s" : "")} OpenCV could not decode skipped"
        : $"MJPEG over HTTP, {ending}";

    public bool IsLive => true;

    /// <summary>Reads <paramref name="stride"/> parts and decodes the last (Ultralytics' vid_stride on a stream); a part
    /// OpenCV cannot decode is skipped for the next.</summary>
    public bool Next(int stride, Mat frame)
    {
        for (var jpeg = NextEncoded(stride); jpeg is not null; jpeg = NextEncoded(1))
            if (Decode(jpeg, frame)) return true;
        return false;
    }

    /// <summary>Reads <paramref name="stride"/> parts and returns the last one's bytes, not decoded; null at the end.</summary>
    public byte[]? NextEncoded(int stride)
    {
        int parts = 0;
        while (true)
        {
            MultipartPart? part;
            try
            {
                part = reader.Next();
            }
            catch (InvalidDataException e)
            {
                throw new InvalidDataException($"{response.RequestMessage?.RequestUri}: not an MJPEG stream Osprey can read: {e.Message}.", e);
            }
            if (part is null) return null;
            if (++parts < stride) continue;
            if (!part.Complete && !EndsLikeJpeg(part.Body)) return null; // cut off by the server closing: drop it
            return part.Body;
        }
    }

    /// <summary>Decodes a part <see cref="NextEncoded"/> gave (also after this source is disposed); false, counted as
    /// skipped, when OpenCV cannot decode it.</summary>
    public bool Decode(byte[] encoded, Mat frame)
    {
        using var decoded = Cv2.ImDecode(encoded, ImreadModes.Color);
        if (decoded.Empty())
        {
            Interlocked.Increment(ref skipped);
            return false;
        }
        decoded.CopyTo(frame);
        return true;
    }

    public void Stop() => stop.Cancel();

    public void Dispose()
    {
        body.Dispose();
        response.Dispose();
        stop.Dispose();
    }

    private int Read(byte[] buffer, int offset, int count)
    {
        try
        {
            int n = HttpSource.Read(body, buffer, offset, count, out bool timedOut, stop.Token);
            if (timedOut) ending = $"no data for {HttpSource.Silence.TotalSeconds:0} s";
            return n;
        }
        catch (IOException e)
        {
            ending = $"the connection broke ({e.Message})";
            return 0;
        }
    }

    private static string? Boundary(MediaTypeHeaderValue? type)
    {
        string? value = type?.Parameters.FirstOrDefault(p => string.Equals(p.Name, "boundary", StringComparison.OrdinalIgnoreCase))?.Value;
        value = value?.Trim().Trim('"');
        return string.IsNullOrEmpty(value) ? null : value;
    }

    // A whole JPEG ends with the EOI marker FF D9 (trailing CR/LF allowed).
    private static bool EndsLikeJpeg(byte[] bytes)
    {
        int end = bytes.Length;
        while (end > 0 && bytes[end - 1] is (byte)'\r' or (byte)'\n') end--;
        return end >= 2 && bytes[end - 2] == 0xFF && bytes[end - 1] == 0xD9;
    }
}
