using System.Net;
using System.Net.Sockets;
using OpenCvSharp;
using Osprey.Inference;
using Osprey.Sources;
using Osprey.Tests.Models;
using static Osprey.Tests.Inference.PredictVideoFiles;

namespace Osprey.Tests.Sources;

/// <summary>
/// <c>osprey predict</c> on URLs served from 127.0.0.1: an MJPEG stream (alone, inside a <c>.streams</c> file, cut off
/// by the server), image and video files downloaded first, and the rtmp error; each checked against the same frames
/// predicted from local files.
/// </summary>
public class PredictUrlTests
{
    [Fact]
    public void MjpegStreamEqualsItsFramesPredictedFromFiles()
    {
        string dir = TestModels.TempDir();
        try
        {
            var jpegs = HttpTestServer.JpegFrames(6, 192, 108, step: 12);
            var mjpeg = HttpTestServer.Mjpeg(jpegs, "frame", contentLength: true);
            int requests = 0;
            using var server = new HttpTestServer(context =>
            {
                Interlocked.Increment(ref requests);
                return mjpeg(context);
            });
            string url = server.Root + "cam";
            var report = PredictRun.Run(Args(dir, url, ("save_txt", "True"), ("stream_buffer", "True")));
            Assert.Equal(1, requests);

            // the same JPEGs as files, predicted as a folder of images
            string folder = Path.Combine(dir, "jpegs");
            Directory.CreateDirectory(folder);
            for (int k = 1; k <= jpegs.Count; k++) File.WriteAllBytes(Path.Combine(folder, $"frame_{k}.jpg"), jpegs[k - 1]);
            var files = PredictRun.Run(Args(dir, folder, ("save_txt", "True")));

            Assert.Equal(6, report.Images);
            Assert.All(report.InputShapes, s => Assert.Equal(new long[] { 1, 3, ImageSize, ImageSize }, s));
            Assert.Equal(files.Detections, report.Detections);
            Assert.True(report.Detections >= 6, "the frames should show people");
            for (int k = 1; k <= 6; k++) AssertSameLabels(Path.Combine(files.RunDirectory, "labels", $"frame_{k}.txt"),
                Path.Combine(report.RunDirectory, "labels", $"cam_{k}.txt"));
            // a stream's video: named by the URL's file name, every frame, at 30 fps (Ultralytics' stream writer)
            Assert.Equal((6, 192, 108, 30.0), Describe(Path.Combine(report.RunDirectory, "cam.avi")));
            Assert.Contains($"{url}: 6 frames (MJPEG over HTTP, the server closed the stream) → {Path.Combine(report.RunDirectory, "cam.avi")}", report.Lines);

            // a URL with a video suffix that turns out to be an MJPEG stream is read as a stream, not downloaded, from the
            // response that said so (one request)
            var suffixed = PredictRun.Run(Args(dir, server.Root + "live.avi", ("save_txt", "True"), ("stream_buffer", "True")));
            Assert.Equal(2, requests);
            Assert.Equal(6, suffixed.Images);
            Assert.Equal((6, 192, 108, 30.0), Describe(Path.Combine(suffixed.RunDirectory, "live.avi")));
            AssertSameLabels(Path.Combine(files.RunDirectory, "labels", "frame_4.txt"), Path.Combine(suffixed.RunDirectory, "labels", "live_4.txt"));

            // vid_stride=3 on a stream: parts 1 and 4 (Ultralytics' LoadStreams: the first frame, then every third after it)
            var strided = PredictRun.Run(Args(dir, url, ("save_txt", "True"), ("vid_stride", "3"), ("stream_buffer", "True")));
            Assert.Equal(2, strided.Images);
            AssertSameLabels(Path.Combine(files.RunDirectory, "labels", "frame_1.txt"), Path.Combine(strided.RunDirectory, "labels", "cam_1.txt"));
            AssertSameLabels(Path.Combine(files.RunDirectory, "labels", "frame_4.txt"), Path.Combine(strided.RunDirectory, "labels", "cam_2.txt"));
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    /// <summary>A camera-style stream (boundary given with its dashes, no Content-Length) batched with a video file.</summary>
    [Fact]
    public void MjpegStreamInStreamsFileIsBatchedWithAVideo()
    {
        string dir = TestModels.TempDir();
        try
        {
            var jpegs = HttpTestServer.JpegFrames(5, 160, 96, step: -9);
            using var server = new HttpTestServer(HttpTestServer.Mjpeg(jpegs, "--myboundary", contentLength: false));
            string video = Path.Combine(dir, "a.avi");
            Write(video, frames: 7, width: 192, height: 108, fps: 10, step: 4);
            string streams = Path.Combine(dir, "list.streams");
            File.WriteAllLines(streams, new[] { server.Root + "live/view.mjpg", video });
            var args = Args(dir, streams, ("save_txt", "True"), ("stream_buffer", "True"));
            var report = PredictRun.Run(args);

            // five batches of two: the MJPEG stream ends first
            Assert.Equal(5, report.InputShapes.Count);
            Assert.All(report.InputShapes, s => Assert.Equal(new long[] { 2, 3, ImageSize, ImageSize }, s));
            Assert.Equal((5, 160, 96, 30.0), Describe(Path.Combine(report.RunDirectory, "view.avi")));
            Assert.Equal((5, 192, 108, 30.0), Describe(Path.Combine(report.RunDirectory, "a.avi")));
            var decoded = jpegs.Select(j => Cv2.ImDecode(j, ImreadModes.Color)).ToList();
            var expected = PredictOneByOne(decoded, args);
            Assert.Contains(expected, p => p.Detections.Count > 0);
            for (int k = 1; k <= 5; k++) AssertLabels(Path.Combine(report.RunDirectory, "labels", $"view_{k}.txt"), expected[k - 1]);
            var videoFrames = Frames(video);
            var expectedVideo = PredictOneByOne(videoFrames.Take(5), args);
            for (int k = 1; k <= 5; k++) AssertLabels(Path.Combine(report.RunDirectory, "labels", $"a_{k}.txt"), expectedVideo[k - 1]);
            foreach (var frame in decoded.Concat(videoFrames)) frame.Dispose();
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    /// <summary>The server aborts just before the end of the fourth JPEG: three frames are predicted and the run ends cleanly.</summary>
    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public void ServerClosingMidStreamEndsTheRun(bool contentLength)
    {
        string dir = TestModels.TempDir();
        try
        {
            var jpegs = HttpTestServer.JpegFrames(6, 192, 108, step: 12);
            using var server = new HttpTestServer(HttpTestServer.Mjpeg(jpegs, "frame", contentLength, cutAt: 3));
            string url = server.Root + "cam";
            var args = Args(dir, url, ("save_txt", "True"), ("save_json", "True"), ("stream_buffer", "True"));
            var report = PredictRun.Run(args);

            Assert.Equal(3, report.Images);
            Assert.Equal((3, 192, 108, 30.0), Describe(Path.Combine(report.RunDirectory, "cam.avi")));
            var decoded = jpegs.Take(3).Select(j => Cv2.ImDecode(j, ImreadModes.Color)).ToList();
            var expected = PredictOneByOne(decoded, args);
            for (int k = 1; k <= 3; k++) AssertLabels(Path.Combine(report.RunDirectory, "labels", $"cam_{k}.txt"), expected[k - 1]);
            Assert.Equal(expected.Sum(p => p.Detections.Count), report.Detections);
            Assert.True(File.Exists(Path.Combine(report.RunDirectory, "predictions.json")));
            // the cut part is dropped as cut off, not counted as a part OpenCV could not decode
            Assert.Contains($"{url}: 3 frames (MJPEG over HTTP, the server closed the stream) → {Path.Combine(report.RunDirectory, "cam.avi")}", report.Lines);
            foreach (var frame in decoded) frame.Dispose();
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    /// <summary>
    /// A camera that closes its stream is reopened (Ultralytics' reader reopens the URL): the first connection sends
    /// frames 1–3, the second frames 4–5, then the server answers 404, and after OSPREY_STREAM_RECONNECT attempts the
    /// run ends with all five frames predicted in order.
    /// </summary>
    [Fact]
    public void AClosedCameraStreamIsReopened()
    {
        string dir = TestModels.TempDir();
        string? before = Environment.GetEnvironmentVariable(Reconnection.Variable);
        try
        {
            Environment.SetEnvironmentVariable(Reconnection.Variable, "2");
            var jpegs = HttpTestServer.JpegFrames(5, 192, 108, step: 12);
            int requests = 0;
            var first = HttpTestServer.Mjpeg(jpegs.Take(3).ToList(), "frame", contentLength: true);
            var second = HttpTestServer.Mjpeg(jpegs.Skip(3).ToList(), "frame", contentLength: true);
            using var server = new HttpTestServer(context => Interlocked.Increment(ref requests) switch
            {
                1 => first(context),
                2 => second(context),
                _ => HttpTestServer.Serve(Array.Empty<byte>(), "text/plain")(WithStatus(context, 404)),
            });
            string url = server.Root + "cam";
            var args = Args(dir, url, ("save_txt", "True"), ("stream_buffer", "True"));
            var clock = System.Diagnostics.Stopwatch.StartNew();
            var report = PredictRun.Run(args);

            Assert.True(clock.Elapsed >= TimeSpan.FromSeconds(3), $"three attempts a second apart took {clock.Elapsed}");
            Assert.Equal(5, report.Images);
            Assert.Equal(4, requests);                     // the stream, the reopened stream, two failed attempts
            var decoded = jpegs.Select(j => Cv2.ImDecode(j, ImreadModes.Color)).ToList();
            var expected = PredictOneByOne(decoded, args);
            for (int k = 1; k <= 5; k++) AssertLabels(Path.Combine(report.RunDirectory, "labels", $"cam_{k}.txt"), expected[k - 1]);
            string line = Assert.Single(report.Lines, l => l.StartsWith($"{url}: 5 frames", StringComparison.Ordinal));
            Assert.Contains("not reopened after 2 attempts 1 s apart", line);
            Assert.Contains("404", line);
            Assert.Contains("reopened 1 time", line);
            foreach (var frame in decoded) frame.Dispose();
        }
        finally
        {
            Environment.SetEnvironmentVariable(Reconnection.Variable, before);
            Directory.Delete(dir, recursive: true);
        }
    }

    private static HttpListenerContext WithStatus(HttpListenerContext context, int status)
    {
        context.Response.StatusCode = status;
        return context;
    }

    /// <summary>Image and video URLs are downloaded and predicted as the local files (Ultralytics' check_file); HTTP errors name the URL.</summary>
    [Fact]
    public void ImageAndVideoUrlsEqualTheirLocalFiles()
    {
        string dir = TestModels.TempDir();
        try
        {
            string image = Path.Combine(dir, "local", "zidane.jpg");
            Directory.CreateDirectory(Path.GetDirectoryName(image)!);
            File.WriteAllBytes(image, HttpTestServer.JpegFrames(1, 192, 108, step: 0)[0]);
            string video = Path.Combine(dir, "local", "clip.avi");
            Write(video, frames: 5, width: 160, height: 96, fps: 12, step: 5);
            var temps = TempDownloads();

            using (var server = new HttpTestServer(HttpTestServer.Serve(File.ReadAllBytes(image), "image/jpeg")))
            {
                string url = server.Root + "media/zidane.jpg?token=1";
                var remote = PredictRun.Run(Args(dir, url, ("save_txt", "True"), ("save_json", "True")));
                var local = PredictRun.Run(Args(dir, image, ("save_txt", "True"), ("save_json", "True")));
                Assert.Equal(1, remote.Images);
                Assert.True(local.Detections > 0);
                Assert.Equal(local.Detections, remote.Detections);
                // outputs named by the URL's file name, as for the local file; JSON and lines name the URL
                AssertSameLabels(Path.Combine(local.RunDirectory, "labels", "zidane.txt"), Path.Combine(remote.RunDirectory, "labels", "zidane.txt"));
                using (var a = Cv2.ImRead(Path.Combine(local.RunDirectory, "zidane.jpg")))
                using (var b = Cv2.ImRead(Path.Combine(remote.RunDirectory, "zidane.jpg")))
                    Assert.Equal(0, Cv2.Norm(a, b, NormTypes.L1));
                var localJson = Json(local.RunDirectory);
                var remoteJson = Json(remote.RunDirectory);
                Assert.All(localJson, r => Assert.Equal(image, r.image));
                Assert.Equal(System.Text.Json.JsonSerializer.Serialize(localJson.Select(r => r with { image = url })),
                    System.Text.Json.JsonSerializer.Serialize(remoteJson));

                string missing = server.Root + "missing/bus.jpg";
                var e = Assert.Throws<InvalidDataException>(() => PredictRun.Run(Args(dir, missing)));
                Assert.Equal($"{missing}: HTTP 404 Not Found.", e.Message);
            }
            using (var server = new HttpTestServer(HttpTestServer.Serve(File.ReadAllBytes(video), "video/x-msvideo")))
            {
                string url = server.Root + "videos/clip.avi";
                var remote = PredictRun.Run(Args(dir, url, ("save_txt", "True")));
                var local = PredictRun.Run(Args(dir, video, ("save_txt", "True")));
                Assert.Equal(5, remote.Images);
                Assert.Equal(local.Detections, remote.Detections);
                // a video URL is a video, not a stream: the source's fps (12), labels per frame
                Assert.Equal((5, 160, 96, 12.0), Describe(Path.Combine(remote.RunDirectory, "clip.avi")));
                for (int k = 1; k <= 5; k++)
                    AssertSameLabels(Path.Combine(local.RunDirectory, "labels", $"clip_{k}.txt"), Path.Combine(remote.RunDirectory, "labels", $"clip_{k}.txt"));
                Assert.Contains($"{url}: 5 frames → {Path.Combine(remote.RunDirectory, "clip.avi")}", remote.Lines);
            }
            // the downloads are gone and nothing was written next to the user's files
            Assert.Equal(temps, TempDownloads());
            Assert.Equal(new[] { "clip.avi", "zidane.jpg" }, Directory.GetFiles(Path.Combine(dir, "local")).Select(Path.GetFileName).Order());
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    /// <summary>rtmp:// (and tcp://): the bundled OpenCV's FFmpeg has no network protocols; the error says so and what to do instead.</summary>
    [Fact]
    public void RtmpUrlSaysWhyItCannotBeRead()
    {
        string dir = TestModels.TempDir();
        var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        try
        {
            int port = ((IPEndPoint)listener.LocalEndpoint).Port;
            string url = $"rtmp://127.0.0.1:{port}/live";
            var (code, _, err) = Osprey.Tests.Cli.CliAppTests.Run("predict", $"model={Model}", $"source={url}", "imgsz=64",
                $"project={dir}", "device=cpu");
            Assert.Equal(Osprey.Cli.CliApp.Failure, code);
            Assert.Equal($"osprey: error: {url}: a server answers at 127.0.0.1:{port}, but OpenCV cannot read a video from it. " +
                "The OpenCV that ships with Osprey (OpenCvSharp4's runtime) has FFmpeg without network protocols (rtsp, rtmp, tcp, http), " +
                "so rtmp:// streams cannot be read: save the stream to a file and pass that, relay it as MJPEG over HTTP " +
                "(multipart/x-mixed-replace) or RTSP, which Osprey reads itself, or run with an OpenCV whose FFmpeg has network protocols.", err.TrimEnd());
        }
        finally
        {
            listener.Stop();
            Directory.Delete(dir, recursive: true);
        }
    }

    private static List<PredictionRecord> Json(string run) =>
        System.Text.Json.JsonSerializer.Deserialize<List<PredictionRecord>>(File.ReadAllText(Path.Combine(run, "predictions.json")))!;

    private static string[] TempDownloads() =>
        Directory.GetDirectories(Path.GetTempPath(), "osprey-*").Where(d => Path.GetFileName(d).Length == "osprey-".Length + 32).Order().ToArray();

    // Same label file, line for line (both runs predict the same pixels at batch 1), or both absent.
    private static void AssertSameLabels(string expected, string actual)
    {
        Assert.Equal(File.Exists(expected), File.Exists(actual));
        if (File.Exists(expected)) Assert.Equal(File.ReadAllText(expected), File.ReadAllText(actual));
    }
}
