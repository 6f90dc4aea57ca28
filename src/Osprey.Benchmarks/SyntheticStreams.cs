using System.Net;
using System.Net.Sockets;
using System.Text;
using OpenCvSharp;

namespace Osprey.Benchmarks;

/// <summary>
/// Cameras for <c>osprey bench serve</c>: MJPEG over HTTP (<c>multipart/x-mixed-replace</c>, as IP cameras send it) from
/// 127.0.0.1, <c>GET /cam{i}</c> for stream i, each at a steady frame rate from a set of JPEG frames (stream i starts at
/// frame 7i, so streams show different pictures at a time). A plain TCP listener writing HTTP/1.1 itself: nothing of
/// the server under test is shared with it.
/// </summary>
public sealed class SyntheticStreams : IAsyncDisposable
{
    const string Boundary = "frame";
    readonly TcpListener listener = new(IPAddress.Loopback, 0);
    readonly CancellationTokenSource stop = new();
    readonly IReadOnlyList<byte[]> frames;
    readonly TimeSpan interval;
    readonly Task accepting;
    readonly List<Task> connections = new();
    long sent;

    /// <param name="frames">The JPEG frames the streams cycle through.</param>
    /// <param name="fps">Frames a second of each stream.</param>
    public SyntheticStreams(IReadOnlyList<byte[]> frames, double fps)
    {
        if (frames.Count == 0) throw new ArgumentException("no frames to stream.", nameof(frames));
        this.frames = frames;
        interval = TimeSpan.FromSeconds(1 / fps);
        listener.Start();
        accepting = Task.Run(Accept);
    }

    /// <summary>The URL of stream <paramref name="index"/>.</summary>
    public string Url(int index) => $"http://127.0.0.1:{((IPEndPoint)listener.LocalEndpoint).Port}/cam{index}";

    /// <summary>Frames sent so far, all streams together.</summary>
    public long Sent => Interlocked.Read(ref sent);

    /// <summary>
    /// JPEG frames of <paramref name="width"/>×<paramref name="height"/> (quality 80) from the images of a folder or glob
    /// (at most <paramref name="count"/>, sorted), each resized to the size; null: drawn pictures of coloured rectangles.
    /// </summary>
    /// <exception cref="FileNotFoundException">The folder or glob has no image OpenCV can read.</exception>
    public static IReadOnlyList<byte[]> Frames(string? images, int width, int height, int count = 64)
    {
        var encoding = new ImageEncodingParam(ImwriteFlags.JpegQuality, 80);
        var frames = new List<byte[]>();
        if (images is null)
        {
            var random = new Random(0);
            for (int k = 0; k < count; k++)
            {
                using var picture = new Mat(height, width, MatType.CV_8UC3, new Scalar(60, 100, 140));
                for (int r = 0; r < 6; r++)
                    Cv2.Rectangle(picture, new Rect(random.Next(width - 40), random.Next(height - 40), 20 + random.Next(width / 3), 20 + random.Next(height / 3)),
                        new Scalar(random.Next(256), random.Next(256), random.Next(256)), -1);
                frames.Add(picture.ImEncode(".jpg", encoding));
            }
            return frames;
        }
        foreach (string path in ImagePaths(images).Take(count))
        {
            using var image = Cv2.ImRead(path, ImreadModes.Color);
            if (image.Empty()) continue;
            using var resized = image.Resize(new Size(width, height), interpolation: InterpolationFlags.Area);
            frames.Add(resized.ImEncode(".jpg", encoding));
        }
        return frames.Count > 0 ? frames : throw new FileNotFoundException($"source={images}: no image OpenCV can read there.");
    }

    static IEnumerable<string> ImagePaths(string images)
    {
        if (Directory.Exists(images)) return Directory.EnumerateFiles(images).Where(ImageFiles.IsImage).Order(StringComparer.Ordinal);
        string folder = Path.GetDirectoryName(images) is { Length: > 0 } d ? d : ".";
        if (!Directory.Exists(folder)) throw new FileNotFoundException($"source={images}: no such folder or glob.");
        return Directory.EnumerateFiles(folder, Path.GetFileName(images)).Where(ImageFiles.IsImage).Order(StringComparer.Ordinal);
    }

    async Task Accept()
    {
        while (!stop.IsCancellationRequested)
        {
            TcpClient client;
            try
            {
                client = await listener.AcceptTcpClientAsync(stop.Token).ConfigureAwait(false);
            }
            catch (Exception e) when (e is OperationCanceledException or SocketException or ObjectDisposedException)
            {
                return;
            }
            lock (connections) connections.Add(Task.Run(() => Serve(client)));
        }
    }

    // One viewer: read the request line (GET /cam{i}), then a part every interval until the viewer or the streams stop.
    async Task Serve(TcpClient client)
    {
        using var connection = client;
        var network = client.GetStream();
        try
        {
            using var reader = new StreamReader(network, Encoding.ASCII, false, 1024, leaveOpen: true);
            string request = await reader.ReadLineAsync(stop.Token).ConfigureAwait(false) ?? "";
            while (await reader.ReadLineAsync(stop.Token).ConfigureAwait(false) is { Length: > 0 }) { }   // the headers
            string path = request.Split(' ') is [_, var target, ..] ? target : "";
            if (!path.StartsWith("/cam", StringComparison.Ordinal) || !int.TryParse(path[4..], out int index))
            {
                await network.WriteAsync(Encoding.ASCII.GetBytes("HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"), stop.Token).ConfigureAwait(false);
                return;
            }
            await network.WriteAsync(Encoding.ASCII.GetBytes(
                $"HTTP/1.1 200 OK\r\nContent-Type: multipart/x-mixed-replace; boundary={Boundary}\r\nCache-Control: no-cache\r\nConnection: close\r\n\r\n"),
                stop.Token).ConfigureAwait(false);
            using var timer = new PeriodicTimer(interval);
            for (long k = 7L * index; ; k++)
            {
                var jpeg = frames[(int)(k % frames.Count)];
                var head = Encoding.ASCII.GetBytes($"--{Boundary}\r\nContent-Type: image/jpeg\r\nContent-Length: {jpeg.Length}\r\n\r\n");
                await network.WriteAsync(head, stop.Token).ConfigureAwait(false);
                await network.WriteAsync(jpeg, stop.Token).ConfigureAwait(false);
                await network.WriteAsync("\r\n"u8.ToArray(), stop.Token).ConfigureAwait(false);
                Interlocked.Increment(ref sent);
                if (!await timer.WaitForNextTickAsync(stop.Token).ConfigureAwait(false)) return;
            }
        }
        catch (Exception e) when (e is OperationCanceledException or IOException or SocketException or ObjectDisposedException)
        {
            // the viewer went away, or the streams stop
        }
    }

    /// <summary>Stops the listener and every stream.</summary>
    public async ValueTask DisposeAsync()
    {
        await stop.CancelAsync().ConfigureAwait(false);
        listener.Stop();
        await accepting.ConfigureAwait(false);
        Task[] open;
        lock (connections) open = connections.ToArray();
        await Task.WhenAll(open).ConfigureAwait(false);
        stop.Dispose();
    }
}
