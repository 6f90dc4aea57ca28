using System.Net;
using System.Text;
using OpenCvSharp;
using Osprey.Tests.Data;
using Osprey.Tests.Inference;

namespace Osprey.Tests.Sources;

/// <summary>An HTTP server on 127.0.0.1 (a free port) that answers each request with a handler, one at a time, until disposed.</summary>
internal sealed class HttpTestServer : IDisposable
{
    private readonly HttpListener listener = new();
    private readonly Task loop;

    public HttpTestServer(Func<HttpListenerContext, Task> handle)
    {
        int port = PredictVideoFiles.FreePort();
        listener.Prefixes.Add($"http://127.0.0.1:{port}/");
        listener.Start();
        Root = $"http://127.0.0.1:{port}/";
        loop = Task.Run(async () =>
        {
            while (listener.IsListening)
            {
                HttpListenerContext context;
                try { context = await listener.GetContextAsync(); }
                catch (Exception) { return; }
                try { await handle(context); }
                catch (Exception) { } // the client went away
            }
        });
    }

    /// <summary>http://127.0.0.1:port/</summary>
    public string Root { get; }

    public void Dispose()
    {
        listener.Stop();
        listener.Close();
        try { loop.Wait(TimeSpan.FromSeconds(5)); } catch (AggregateException) { }
    }

    /// <summary>
    /// An MJPEG stream as IP cameras send it: <c>multipart/x-mixed-replace; boundary=…</c>, each part a JPEG with its
    /// Content-Type (and Content-Length when <paramref name="contentLength"/>), chunked; after the last part the closing
    /// boundary. With <paramref name="cutAt"/> ≥ 0 the server sends that part less its last two bytes (the JPEG's end
    /// marker, so a decoder could still make a picture of it) and then aborts the connection. With an
    /// <paramref name="interval"/> each part after the first comes that long after the one before (a camera's frame rate).
    /// </summary>
    public static Func<HttpListenerContext, Task> Mjpeg(IReadOnlyList<byte[]> jpegs, string boundary, bool contentLength, int cutAt = -1,
        TimeSpan interval = default) =>
        async context =>
        {
            var response = context.Response;
            response.ContentType = $"multipart/x-mixed-replace; boundary={boundary}";
            response.SendChunked = true;
            var output = response.OutputStream;
            string delimiter = "--" + boundary.TrimStart('-');
            await Write(output, "a preamble that readers ignore\r\n");
            for (int k = 0; k < jpegs.Count; k++)
            {
                if (k > 0 && interval > TimeSpan.Zero) await Task.Delay(interval);
                var jpeg = jpegs[k];
                await Write(output, $"{delimiter}\r\nContent-Type: image/jpeg\r\n" + (contentLength ? $"Content-Length: {jpeg.Length}\r\n" : "") + "\r\n");
                if (k == cutAt)
                {
                    await output.WriteAsync(jpeg.AsMemory(0, jpeg.Length - 2));
                    await output.FlushAsync();
                    response.Abort();
                    return;
                }
                await output.WriteAsync(jpeg);
                await Write(output, "\r\n");
                await output.FlushAsync();
            }
            await Write(output, $"{delimiter}--\r\n");
            response.Close();
        };

    /// <summary>Serves <paramref name="bytes"/> at every path, or 404 for paths containing "missing".</summary>
    public static Func<HttpListenerContext, Task> Serve(byte[] bytes, string contentType) =>
        async context =>
        {
            if (context.Request.Url!.AbsolutePath.Contains("missing", StringComparison.Ordinal))
            {
                context.Response.StatusCode = 404;
                context.Response.Close();
                return;
            }
            context.Response.ContentType = contentType;
            context.Response.ContentLength64 = bytes.Length;
            await context.Response.OutputStream.WriteAsync(bytes);
            context.Response.Close();
        };

    /// <summary>
    /// <paramref name="count"/> JPEG frames of zidane.jpg at <paramref name="width"/>x<paramref name="height"/>, the k-th
    /// shifted k·<paramref name="step"/> pixels to the right (so each frame's detections differ and order shows).
    /// </summary>
    public static List<byte[]> JpegFrames(int count, int width, int height, int step)
    {
        using var source = Cv2.ImRead(Path.Combine(DataTestFiles.SharedData, "images", "zidane.jpg"));
        using var small = source.Resize(new Size(width, height), interpolation: InterpolationFlags.Area);
        var frames = new List<byte[]>();
        for (int k = 0; k < count; k++)
        {
            using var shift = Mat.FromArray(new double[,] { { 1, 0, step * k }, { 0, 1, 0 } });
            using var frame = small.WarpAffine(shift, small.Size(), borderMode: BorderTypes.Constant, borderValue: new Scalar(40, 80, 120));
            frames.Add(frame.ImEncode(".jpg"));
        }
        return frames;
    }

    /// <summary>
    /// <paramref name="count"/> JPEGs of one grey level each, frame k (1-based) of level <see cref="GreyLevel"/>(k), so
    /// that a frame shows which it is after JPEG and MJPG coding (<see cref="FrameNumber"/>).
    /// </summary>
    public static List<byte[]> NumberedFrames(int count, int width, int height)
    {
        var frames = new List<byte[]>();
        for (int k = 1; k <= count; k++)
        {
            using var frame = new Mat(height, width, MatType.CV_8UC3, Scalar.All(GreyLevel(k)));
            frames.Add(frame.ImEncode(".jpg"));
        }
        return frames;
    }

    /// <summary>The grey level of frame k (1 … 48) of <see cref="NumberedFrames"/>: 10 + 5k.</summary>
    public static int GreyLevel(int k) => 10 + 5 * k;

    /// <summary>The number k of a frame of <see cref="NumberedFrames"/>, from its mean (coding moves it by far less than 2.5).</summary>
    public static int FrameNumber(Mat frame)
    {
        double mean = Cv2.Mean(frame).Val0;
        int k = (int)Math.Round((mean - 10) / 5);
        Assert.True(Math.Abs(mean - GreyLevel(k)) < 1.5, $"a frame of mean {mean} is not one of the numbered frames");
        return k;
    }

    private static Task Write(Stream output, string text) => output.WriteAsync(Encoding.ASCII.GetBytes(text)).AsTask();
}
