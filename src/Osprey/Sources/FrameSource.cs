using OpenCvSharp;

namespace Osprey.Sources;

/// <summary>One stream of a streams source: a video file, a downloaded video, or an MJPEG stream over HTTP.</summary>
internal interface IFrameSource : IDisposable
{
    /// <summary>What the source is and how it ended, for the summary line ("" when there is nothing to say).</summary>
    string Description { get; }

    /// <summary>Moves <paramref name="stride"/> frames on and puts the last one in <paramref name="frame"/>; false at the end.</summary>
    bool Next(int stride, Mat frame);

    /// <summary>A live network stream (MJPEG over HTTP, RTSP): reopened when it ends or breaks (<see cref="Reconnection"/>).</summary>
    bool IsLive => false;

    /// <summary>Makes a <see cref="Next"/> blocked in another thread return soon (false); called before Dispose.</summary>
    void Stop()
    {
    }
}

/// <summary>
/// A source whose frames arrive encoded (MJPEG's JPEG parts): <see cref="LiveFrames"/> with the newest-frame policy keeps
/// them encoded and decodes only the frame it hands out, so the frames a busy predictor never sees cost no decoding.
/// </summary>
internal interface IEncodedFrames
{
    /// <summary>Moves <paramref name="stride"/> frames on and returns the last one still encoded; null at the end.</summary>
    byte[]? NextEncoded(int stride);

    /// <summary>Decodes a frame <see cref="NextEncoded"/> gave into <paramref name="frame"/> (also after the source is
    /// disposed); false, counted in the source's description, when it is not an image.</summary>
    bool Decode(byte[] encoded, Mat frame);
}

/// <summary>Frames that OpenCV's VideoCapture reads (a file; a URL only with an OpenCV whose FFmpeg has network protocols).</summary>
internal sealed class CaptureFrames(VideoCapture capture, IDisposable? owned = null) : IFrameSource
{
    public VideoCapture Capture => capture;

    public string Description => "";

    // grab() stride times, then retrieve() the last (Ultralytics' vid_stride).
    public bool Next(int stride, Mat frame)
    {
        for (int i = 0; i < stride; i++)
            if (!capture.Grab()) return false;
        return capture.Retrieve(frame) && !frame.Empty();
    }

    public void Dispose()
    {
        capture.Dispose();
        owned?.Dispose();
    }
}

/// <summary>Opens a path or URL as frames, or fails saying why it cannot be read.</summary>
internal static class FrameSources
{
    /// <summary>
    /// A file: VideoCapture. http(s): Osprey's own reader when the server sends MJPEG (multipart/x-mixed-replace); a URL
    /// whose path ends in a video suffix is downloaded and read as a file; anything else is tried with VideoCapture
    /// and is otherwise an error. rtsp: Osprey's own RTSP client (RTP/JPEG or H.264 over TCP). rtmp/tcp: VideoCapture,
    /// which the bundled OpenCV cannot do (the error says why).
    /// </summary>
    public static IFrameSource Open(string path)
    {
        if (!SourcePaths.IsUrl(path)) return new CaptureFrames(OpenFile(path, path));
        var uri = new Uri(path);
        if (HttpSource.IsHttp(path))
        {
            var response = HttpSource.Get(path);
            if (MjpegFrames.IsMjpeg(response))
            {
                try
                {
                    return new MjpegFrames(path, response);
                }
                catch
                {
                    response.Dispose();
                    throw;
                }
            }
            string type = response.Content.Headers.ContentType?.MediaType ?? "no Content-Type";
            if (SourcePaths.IsVideo(SourcePaths.UrlFileName(path)))
            {
                TempDownload download;
                using (response) download = HttpSource.Save(path, response);
                try
                {
                    return new CaptureFrames(OpenFile(download.Path, path), download);
                }
                catch
                {
                    download.Dispose();
                    throw;
                }
            }
            response.Dispose();
            if (TryCapture(path) is { } web) return new CaptureFrames(web);
            throw new InvalidDataException($"{path}: the server at {uri.Host}:{uri.Port} sends {type}, which is not an MJPEG stream " +
                "(multipart/x-mixed-replace), the only kind of HTTP stream Osprey reads itself; and the OpenCV that ships with Osprey " +
                "(OpenCvSharp4's runtime) has FFmpeg without network protocols (http, rtsp, rtmp, tcp), so it cannot read this one. " +
                "Serve the stream as MJPEG, give a URL ending in the video's suffix (.mp4, .avi, …) to download it first, or save it to a file and pass that.");
        }
        if (uri.Scheme.Equals("rtsp", StringComparison.OrdinalIgnoreCase)) return Rtsp.RtspFrames.Open(path);
        if (TryCapture(path) is { } capture) return new CaptureFrames(capture);
        if (!Answers(uri)) throw new InvalidDataException($"{path}: no server answers at {uri.Host}:{uri.Port}.");
        throw new InvalidDataException($"{path}: a server answers at {uri.Host}:{uri.Port}, but OpenCV cannot read a video from it. " +
            $"The OpenCV that ships with Osprey (OpenCvSharp4's runtime) has FFmpeg without network protocols (rtsp, rtmp, tcp, http), " +
            $"so {uri.Scheme}:// streams cannot be read: save the stream to a file and pass that, relay it as MJPEG over HTTP " +
            "(multipart/x-mixed-replace) or RTSP, which Osprey reads itself, or run with an OpenCV whose FFmpeg has network protocols.");
    }

    /// <summary>Opens a video file with VideoCapture; <paramref name="name"/> names it in errors.</summary>
    public static VideoCapture OpenFile(string path, string name)
    {
        if (!File.Exists(path)) throw new FileNotFoundException($"{name}: no such video file.", name);
        var capture = new VideoCapture(path);
        if (capture.IsOpened()) return capture;
        capture.Dispose();
        throw new InvalidDataException($"{name}: OpenCV cannot open this video (unsupported container or codec).");
    }

    private static VideoCapture? TryCapture(string url)
    {
        var capture = new VideoCapture(url);
        if (capture.IsOpened()) return capture;
        capture.Dispose();
        return null;
    }

    // A TCP connection within 3 s: tells "no server" from "OpenCV cannot read what the server sends".
    private static bool Answers(Uri uri)
    {
        try
        {
            using var client = new System.Net.Sockets.TcpClient();
            return client.ConnectAsync(uri.Host, uri.Port).Wait(TimeSpan.FromSeconds(3)) && client.Connected;
        }
        catch (AggregateException)
        {
            return false;
        }
        catch (System.Net.Sockets.SocketException)
        {
            return false;
        }
    }
}
