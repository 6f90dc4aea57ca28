using System.Net;
using System.Net.Http.Json;
using System.Net.Sockets;
using System.Text;
using OpenCvSharp;
using Osprey.Inference;
using Osprey.Serving;
using Osprey.Sources;
using Osprey.Tests.Data;
using Osprey.Tests.Inference;
using Osprey.Tests.Sources;

namespace Osprey.Tests.Serving;

/// <summary>
/// A stream's annotated MJPEG out, its removal, and bad stream sources: each refused with a 4xx naming the source and
/// the problem while a good stream and the requests are served on.
/// </summary>
public class StreamOutputTests(Xunit.Abstractions.ITestOutputHelper log)
{
    static readonly TimeSpan Patience = TimeSpan.FromSeconds(30);

    [Fact]
    public async Task TheMjpegOutShowsEachFrameWithItsDetectionsDrawnAndRemovalLetsWatchersGo()
    {
        string dir = DataTestFiles.NewTempDir();
        try
        {
            string model = ServeTestSupport.WriteTinyModel(dir, "a", seed: 1);
            var jpegs = HttpTestServer.JpegFrames(100, 160, 120, step: 1);
            using var camera = new HttpTestServer(HttpTestServer.Mjpeg(jpegs, "frame", contentLength: true, interval: TimeSpan.FromMilliseconds(60)));
            await using var scope = await ServerScope.StartAsync(StreamTestSupport.Options(model) with { Backend = "torch" });
            await StreamTestSupport.Add(scope.Client, camera.Root + "cam");
            await using var events = await SseReader.OpenAsync(scope.Client, "/v1/streams/cam/events");

            using var response = await scope.Client.GetAsync("/v1/streams/cam/mjpeg", HttpCompletionOption.ResponseHeadersRead);
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
            Assert.Equal("multipart/x-mixed-replace", response.Content.Headers.ContentType?.MediaType);
            var body = await response.Content.ReadAsStreamAsync();
            var parts = new MultipartReader((buffer, offset, count) => body.Read(buffer, offset, count), "osprey-frame");
            using var predictor = Predictor.Load(model, ServeTestSupport.TinyOptions);
            for (int i = 0; i < 3; i++)
            {
                var part = parts.Next();
                if (part is null) Assert.Fail($"the MJPEG out ended: {await scope.Client.GetStringAsync("/v1/streams")}");
                Assert.Equal("image/jpeg", part.Headers["Content-Type"]);
                int number = int.Parse(part.Headers["X-Frame"]);
                using var shown = Cv2.ImDecode(part.Body, ImreadModes.Color);
                using var raw = Cv2.ImDecode(jpegs[number - 1], ImreadModes.Color);
                using var drawn = predictor.Predict(raw).Plot(raw);
                Assert.Equal((160, 120), (shown.Width, shown.Height));
                // the frame as Prediction.Plot draws it (JPEG-coded once more), not the bare frame
                double toDrawn = MeanAbsoluteDifference(shown, drawn), toRaw = MeanAbsoluteDifference(shown, raw);
                log.WriteLine($"frame {number}: {toDrawn:0.00} from the drawn frame, {toRaw:0.00} from the bare one");
                Assert.True(toDrawn < 4 && toDrawn < toRaw / 4, $"frame {number}: {toDrawn:0.00} from the drawn frame, {toRaw:0.00} from the bare one");
            }

            using (var removed = await scope.Client.DeleteAsync("/v1/streams/cam"))
            {
                Assert.Equal(HttpStatusCode.OK, removed.StatusCode);
                Assert.Equal("stopped", (await ServeTestSupport.JsonOf(removed)).GetProperty("stream").GetProperty("state").GetString());
            }
            await events.Ended.WaitAsync(Patience);                        // the event stream ends, without an error event
            Assert.DoesNotContain(events.Events, e => e.Event == "error");
            while (parts.Next() is not null) { }                           // the MJPEG out ends with its closing boundary
            Assert.Equal(HttpStatusCode.NotFound, (await scope.Client.GetAsync("/v1/streams/cam")).StatusCode);
            Assert.Equal(0, (await ServeTestSupport.JsonOf(await scope.Client.GetAsync("/v1/streams"))).GetProperty("streams").GetArrayLength());
            double predicted = ServeTestSupport.Metric(await scope.MetricsText(), "osprey_frames_total", ("source", "cam"));
            await Task.Delay(300);
            Assert.Equal(predicted, ServeTestSupport.Metric(await scope.MetricsText(), "osprey_frames_total", ("source", "cam")));
            Assert.Contains(scope.Events, e => e.Kind == ServeEventKind.StreamRemoved);
            // a new stream of the same source gets a new id: the removed one's watchers never see it
            Assert.Equal("cam-2", (await StreamTestSupport.Add(scope.Client, camera.Root + "cam")).GetProperty("id").GetString());
        }
        finally
        {
            Directory.Delete(dir, true);
        }
    }

    [Fact]
    public async Task BadSourcesGetA4xxNamingTheProblemWhileEverythingElseIsServed()
    {
        string dir = DataTestFiles.NewTempDir();
        var silent = new TcpListener(IPAddress.Loopback, 0);   // accepts connections (the backlog) and never answers
        silent.Start();
        try
        {
            string model = ServeTestSupport.WriteTinyModel(dir, "a", seed: 1);
            using var camera = new HttpTestServer(HttpTestServer.Mjpeg(HttpTestServer.NumberedFrames(48, 64, 48).Concat(HttpTestServer.NumberedFrames(48, 64, 48))
                .Concat(HttpTestServer.NumberedFrames(48, 64, 48)).ToList(), "frame", contentLength: true, interval: TimeSpan.FromMilliseconds(50)));
            using var page = new HttpTestServer(HttpTestServer.Serve(Encoding.UTF8.GetBytes("<html>not a camera</html>"), "text/html"));
            await using var scope = await ServerScope.StartAsync(StreamTestSupport.Options(model) with { StreamOpenTimeout = TimeSpan.FromSeconds(1.5) });
            await StreamTestSupport.Add(scope.Client, camera.Root + "good");
            string refused = $"http://127.0.0.1:{PredictVideoFiles.FreePort()}/cam";
            string never = $"http://127.0.0.1:{((IPEndPoint)silent.LocalEndpoint).Port}/cam";
            string missing = Path.Combine(dir, "missing.mp4");
            var cases = new (HttpContent Body, HttpStatusCode Status, string[] Says)[]
            {
                (new StringContent("cam", Encoding.UTF8, "text/plain"), HttpStatusCode.UnsupportedMediaType, new[] { "Content-Type text/plain", "{\"source\"" }),
                (new StringContent("{\"source\": ", Encoding.UTF8, "application/json"), HttpStatusCode.BadRequest, new[] { "is not valid JSON" }),
                (JsonContent.Create(new { url = "x" }), HttpStatusCode.BadRequest, new[] { "no \"source\" given" }),
                (JsonContent.Create(new { source = refused }), HttpStatusCode.UnprocessableEntity, new[] { refused, "no server answers" }),
                (JsonContent.Create(new { source = page.Root + "index.html" }), HttpStatusCode.UnprocessableEntity, new[] { page.Root + "index.html", "sends text/html, which is not an MJPEG stream" }),
                (JsonContent.Create(new { source = never }), HttpStatusCode.UnprocessableEntity, new[] { never, "no frame within 1.5 s" }),
                (JsonContent.Create(new { source = missing }), HttpStatusCode.NotFound, new[] { missing, "no such video file" }),
            };
            var jpeg = ServeTestSupport.Jpeg(96, 64);
            foreach (var (content, status, says) in cases)
            {
                using var response = await scope.Client.PostAsync("/v1/streams", content);
                string error = (await ServeTestSupport.JsonOf(response)).GetProperty("error").GetString()!;
                Assert.True(status == response.StatusCode, $"{(int)response.StatusCode} {error}");
                foreach (string text in says) Assert.Contains(text, error);
                using var detect = await scope.Client.PostAsync("/v1/detect", ServeTestSupport.Body(jpeg));   // served on
                Assert.Equal(HttpStatusCode.OK, detect.StatusCode);
            }
            var listed = (await ServeTestSupport.JsonOf(await scope.Client.GetAsync("/v1/streams"))).GetProperty("streams");
            Assert.Equal("good", Assert.Single(listed.EnumerateArray()).GetProperty("id").GetString());
            long before = listed[0].GetProperty("frames").GetInt64();
            await StreamTestSupport.Until(async () => (await StreamTestSupport.Get(scope.Client, "good")).GetProperty("frames").GetInt64() > before + 3,
                Patience, "the good stream goes on");
            Assert.Equal("running", (await StreamTestSupport.Get(scope.Client, "good")).GetProperty("state").GetString());
            Assert.Equal(HttpStatusCode.NotFound, (await scope.Client.DeleteAsync("/v1/streams/nope")).StatusCode);
            Assert.Equal(HttpStatusCode.NotFound, (await scope.Client.GetAsync("/v1/streams/nope/events")).StatusCode);
            Assert.Equal(HttpStatusCode.NotFound, (await scope.Client.GetAsync("/v1/streams/nope/mjpeg")).StatusCode);
            Assert.Equal(4, scope.Events.Count(e => e.Kind == ServeEventKind.StreamRefused));
        }
        finally
        {
            silent.Stop();
            Directory.Delete(dir, true);
        }
    }

    [Fact]
    public async Task AStreamThatBreaksEndsWithAnErrorEventAndIsListedAsEnded()
    {
        string dir = DataTestFiles.NewTempDir();
        try
        {
            string model = ServeTestSupport.WriteTinyModel(dir, "a", seed: 1);
            using var camera = new HttpTestServer(HttpTestServer.Mjpeg(HttpTestServer.NumberedFrames(30, 64, 48), "frame", contentLength: true,
                cutAt: 20, interval: TimeSpan.FromMilliseconds(40)));      // the connection breaks in the middle of frame 21
            await using var scope = await ServerScope.StartAsync(StreamTestSupport.Options(model));
            string url = camera.Root + "cam";
            await StreamTestSupport.Add(scope.Client, url);
            await using var events = await SseReader.OpenAsync(scope.Client, "/v1/streams/cam/events");
            var error = (await events.WaitFor(e => e.Any(x => x.Event == "error"), Patience, "error event")).Single(e => e.Event == "error").Data;
            Assert.StartsWith($"{url}: the stream ended (MJPEG over HTTP, ", error.GetProperty("error").GetString());
            Assert.Equal(20, events.Frames[^1].GetProperty("frame").GetInt32());
            var listed = await StreamTestSupport.Get(scope.Client, "cam");
            Assert.Equal("ended", listed.GetProperty("state").GetString());
            using var detect = await scope.Client.PostAsync("/v1/detect", ServeTestSupport.Body(ServeTestSupport.Jpeg(96, 64)));
            Assert.Equal(HttpStatusCode.OK, detect.StatusCode);
        }
        finally
        {
            Directory.Delete(dir, true);
        }
    }

    [Fact]
    public async Task AStreamThatTurnsOutUnreadableFailsWithAnErrorEvent()
    {
        string dir = DataTestFiles.NewTempDir();
        try
        {
            string model = ServeTestSupport.WriteTinyModel(dir, "a", seed: 1);
            var jpeg = HttpTestServer.NumberedFrames(1, 64, 48)[0];
            // a good first frame, then a part that claims 100 MB: more than a frame may be
            using var camera = new HttpTestServer(async context =>
            {
                context.Response.ContentType = "multipart/x-mixed-replace; boundary=frame";
                context.Response.SendChunked = true;
                var output = context.Response.OutputStream;
                await output.WriteAsync(Encoding.ASCII.GetBytes($"--frame\r\nContent-Type: image/jpeg\r\nContent-Length: {jpeg.Length}\r\n\r\n"));
                await output.WriteAsync(jpeg);
                await output.WriteAsync(Encoding.ASCII.GetBytes("\r\n"));
                await output.FlushAsync();
                await Task.Delay(300);
                await output.WriteAsync(Encoding.ASCII.GetBytes("--frame\r\nContent-Type: image/jpeg\r\nContent-Length: 100000000\r\n\r\n"));
                await output.FlushAsync();
                await Task.Delay(2000);
                context.Response.Abort();
            });
            await using var scope = await ServerScope.StartAsync(StreamTestSupport.Options(model));
            string url = camera.Root + "cam";
            await StreamTestSupport.Add(scope.Client, url);
            await using var events = await SseReader.OpenAsync(scope.Client, "/v1/streams/cam/events");
            var error = (await events.WaitFor(e => e.Any(x => x.Event == "error"), Patience, "error event")).Single(e => e.Event == "error").Data;
            Assert.Equal($"{url}: not an MJPEG stream Osprey can read: a part of 100000000 bytes (more than {MultipartReader.MaxPartBytes}).",
                error.GetProperty("error").GetString());
            var listed = await StreamTestSupport.Get(scope.Client, "cam");
            Assert.Equal("failed", listed.GetProperty("state").GetString());
            Assert.Equal(1, listed.GetProperty("frames").GetInt64());
            Assert.Contains(scope.Events, e => e.Kind == ServeEventKind.StreamFailed && e.Message.Contains(url, StringComparison.Ordinal));
        }
        finally
        {
            Directory.Delete(dir, true);
        }
    }

    [Fact]
    public void SourceArgumentNamesTheStreams()
    {
        string dir = DataTestFiles.NewTempDir();
        try
        {
            string list = Path.Combine(dir, "cams.streams");
            File.WriteAllLines(list, new[] { "# two cameras", "http://127.0.0.1:9/a", "", "rtsp://127.0.0.1:9/b" });
            Assert.Equal(new[] { "http://127.0.0.1:9/a", "rtsp://127.0.0.1:9/b" }, ServeOptions.StreamsOf(list));
            Assert.Equal(new[] { "http://127.0.0.1:9/c" }, ServeOptions.StreamsOf("http://127.0.0.1:9/c"));
            Assert.Empty(ServeOptions.StreamsOf(null));
            Assert.Throws<FileNotFoundException>(() => ServeOptions.StreamsOf(Path.Combine(dir, "none.streams")));
        }
        finally
        {
            Directory.Delete(dir, true);
        }
    }

    // after a 5×5 blur of both, which takes out most of JPEG's ringing around the drawn lines and letters
    static double MeanAbsoluteDifference(Mat a, Mat b)
    {
        using var difference = new Mat();
        using var smoothA = a.GaussianBlur(new Size(5, 5), 0);
        using var smoothB = b.GaussianBlur(new Size(5, 5), 0);
        Cv2.Absdiff(smoothA, smoothB, difference);
        var mean = Cv2.Mean(difference);
        return (mean.Val0 + mean.Val1 + mean.Val2) / 3;
    }
}
