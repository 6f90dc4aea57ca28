using System.Net;
using System.Text.Json;
using OpenCvSharp;
using Osprey.Inference;
using Osprey.Serving;
using Osprey.Tests.Data;
using Osprey.Tests.Sources;

namespace Osprey.Tests.Serving;

/// <summary>
/// Streams of <c>osprey serve</c> from MJPEG cameras served on 127.0.0.1 (<see cref="HttpTestServer"/>): the results over
/// Server-Sent Events against the same frames predicted directly, the newest-frame policy under a slowed model (dropped
/// frames counted, latency bounded), requests and a stream sharing batches.
/// </summary>
public class StreamTests(Xunit.Abstractions.ITestOutputHelper log)
{
    static readonly TimeSpan Patience = TimeSpan.FromSeconds(30);

    [Fact]
    public async Task EachResultIsTheDetectionsOfThatFramePredictedDirectlyAndTheEndIsAnErrorEvent()
    {
        string dir = DataTestFiles.NewTempDir();
        try
        {
            string model = ServeTestSupport.WriteTinyModel(dir, "a", seed: 1);
            var jpegs = HttpTestServer.JpegFrames(12, 160, 120, step: 9);    // zidane shifted: each frame's boxes differ
            using var camera = new HttpTestServer(HttpTestServer.Mjpeg(jpegs, "frame", contentLength: true, interval: TimeSpan.FromMilliseconds(150)));
            string url = camera.Root + "cam";
            // torch: the direct prediction below runs the same backend, so the JSON must match to the last digit
            await using var scope = await ServerScope.StartAsync(StreamTestSupport.Options(model) with { Backend = "torch" });
            var added = await StreamTestSupport.Add(scope.Client, url);
            Assert.Equal("cam", added.GetProperty("id").GetString());
            Assert.Equal(url, added.GetProperty("source").GetString());
            Assert.Equal("running", added.GetProperty("state").GetString());
            await using var events = await SseReader.OpenAsync(scope.Client, "/v1/streams/cam/events");
            Assert.StartsWith("text/event-stream", events.ContentType);
            var all = await events.WaitFor(e => e.Any(x => x.Event == "error"), Patience, "error event at the stream's end");
            await events.Ended.WaitAsync(Patience);                          // the error event is the last: the response ends

            var frames = events.Frames;
            Assert.True(frames.Count >= 6, $"only {frames.Count} results of 12 frames sent 150 ms apart");
            using var predictor = Predictor.Load(model, ServeTestSupport.TinyOptions);
            int previous = 0;
            foreach (var result in frames)
            {
                int number = result.GetProperty("frame").GetInt32();
                Assert.True(number > previous, $"frame {number} after {previous}");
                previous = number;
                Assert.Equal("cam", result.GetProperty("stream").GetString());
                Assert.Equal(1, result.GetProperty("model").GetProperty("version").GetInt32());
                Assert.Equal(model, result.GetProperty("model").GetProperty("path").GetString());
                var received = result.GetProperty("received_at").GetDateTimeOffset();
                var sent = result.GetProperty("sent_at").GetDateTimeOffset();
                Assert.InRange((sent - received).TotalMilliseconds - result.GetProperty("latency_ms").GetDouble(), -1, 1);
                using var image = Cv2.ImDecode(jpegs[number - 1], ImreadModes.Color);
                var direct = ServeJson.Detect(new InferenceResult(predictor.Predict(image), scope.Server.Models.Current!, default, default, 1));
                Assert.Equal(JsonSerializer.Serialize(direct.Detections, ServeJson.Options), result.GetProperty("detections").GetRawText());
                Assert.Equal(JsonSerializer.Serialize(direct.Image, ServeJson.Options), result.GetProperty("image").GetRawText());
            }
            Assert.Equal(12, previous);                                      // the newest frame when the camera closed
            Assert.Equal(3, frames[0].GetProperty("detections").GetArrayLength());

            var error = all.Single(e => e.Event == "error").Data;
            Assert.Equal("cam", error.GetProperty("stream").GetString());
            Assert.Equal($"{url}: the stream ended (MJPEG over HTTP, the server closed the stream).", error.GetProperty("error").GetString());
            var listed = await StreamTestSupport.Get(scope.Client, "cam");
            Assert.Equal("ended", listed.GetProperty("state").GetString());
            Assert.Equal(error.GetProperty("error").GetString(), listed.GetProperty("error").GetString());
            long predicted = listed.GetProperty("frames").GetInt64();
            Assert.True(predicted >= frames.Count);
            Assert.Equal(12, listed.GetProperty("read").GetInt32());
            Assert.Equal(12, predicted + listed.GetProperty("dropped").GetInt64());   // each frame read was predicted or dropped
            string metrics = await scope.MetricsText();
            Assert.Equal(predicted, ServeTestSupport.Metric(metrics, "osprey_frames_total", ("source", "cam")));
            Assert.Equal(predicted, ServeTestSupport.Metric(metrics, "osprey_stream_latency_seconds_count", ("source", "cam")));
            Assert.Contains(scope.Events, e => e.Kind == ServeEventKind.StreamEnded && e.Message.Contains(url, StringComparison.Ordinal));

            // a late subscriber of an ended stream gets its error event and the end
            await using var late = await SseReader.OpenAsync(scope.Client, "/v1/streams/cam/events");
            await late.Ended.WaitAsync(Patience);
            Assert.Equal("error", Assert.Single(late.Events).Event);
        }
        finally
        {
            Directory.Delete(dir, true);
        }
    }

    [Fact]
    public async Task ASlowModelDropsFramesCountsThemAndStaysOnTheNewest()
    {
        string dir = DataTestFiles.NewTempDir();
        try
        {
            string model = ServeTestSupport.WriteTinyModel(dir, "a", seed: 1);
            const int sent = 40;
            var delay = TimeSpan.FromMilliseconds(250);
            using var camera = new HttpTestServer(HttpTestServer.Mjpeg(HttpTestServer.NumberedFrames(sent, 64, 48), "frame", contentLength: false,
                interval: TimeSpan.FromMilliseconds(30)));              // 33 fps against 4 frames a second
            await using var scope = await ServerScope.StartAsync(StreamTestSupport.Options(model),
                path => new WrappedDetector(Predictor.Load(path, ServeTestSupport.TinyOptions), delay));
            string id = (await StreamTestSupport.Add(scope.Client, camera.Root + "slow")).GetProperty("id").GetString()!;
            await using var events = await SseReader.OpenAsync(scope.Client, $"/v1/streams/{id}/events");
            await events.WaitFor(e => e.Any(x => x.Event == "error"), Patience, "the stream's end");

            var numbers = events.Frames.Select(f => f.GetProperty("frame").GetInt32()).ToList();
            var latencies = events.Frames.Select(f => f.GetProperty("latency_ms").GetDouble()).ToList();
            log.WriteLine($"predicted frames {string.Join(",", numbers)}; latencies {string.Join(", ", latencies.Select(l => l.ToString("0")))} ms");
            Assert.InRange(numbers.Count, 2, sent / 3);
            Assert.Equal(sent, numbers[^1]);
            Assert.True(numbers.Zip(numbers.Skip(1)).Any(p => p.Second - p.First > 2), $"no frames skipped: {string.Join(",", numbers)}");
            // never behind: a frame waits at most for the batch in flight, then its own (a queue of every frame would wait seconds)
            Assert.All(latencies, l => Assert.True(l < 2 * delay.TotalMilliseconds + 400, $"latency {l:0} ms"));

            var listed = await StreamTestSupport.Get(scope.Client, id);
            long predicted = listed.GetProperty("frames").GetInt64(), dropped = listed.GetProperty("dropped").GetInt64();
            Assert.Equal(sent, listed.GetProperty("read").GetInt32());
            Assert.Equal(sent, predicted + dropped);
            Assert.True(dropped >= sent / 2, $"{dropped} dropped");
            string metrics = await scope.MetricsText();
            Assert.Equal(dropped, ServeTestSupport.Metric(metrics, "osprey_dropped_frames_total", ("source", id)));
            Assert.Equal(predicted, ServeTestSupport.Metric(metrics, "osprey_frames_total", ("source", id)));
        }
        finally
        {
            Directory.Delete(dir, true);
        }
    }

    [Fact]
    public async Task AStreamAndRequestsShareBatches()
    {
        string dir = DataTestFiles.NewTempDir();
        try
        {
            string model = ServeTestSupport.WriteTinyModel(dir, "a", seed: 1);
            using var camera = new HttpTestServer(HttpTestServer.Mjpeg(HttpTestServer.NumberedFrames(48, 64, 48), "frame", contentLength: true,
                interval: TimeSpan.FromMilliseconds(40)));
            GatedDetector? gated = null;
            await using var scope = await ServerScope.StartAsync(StreamTestSupport.Options(model),
                path => gated = new GatedDetector(Predictor.Load(path, ServeTestSupport.TinyOptions)));
            var jpeg = ServeTestSupport.Jpeg(96, 64, seed: 5);

            // hold the worker on a request; meanwhile the stream's first frame and a second request queue up behind it
            gated!.Close();
            using var reopen = new Disposer(gated.Open);                   // a failed assertion must not leave the worker held
            var held = scope.Client.PostAsync("/v1/detect", ServeTestSupport.Body(jpeg));
            await StreamTestSupport.Until(() => Task.FromResult(gated.Waiting), TimeSpan.FromSeconds(10), "the worker to hold the first request");
            string id = (await StreamTestSupport.Add(scope.Client, camera.Root + "cam")).GetProperty("id").GetString()!;
            await using var events = await SseReader.OpenAsync(scope.Client, $"/v1/streams/{id}/events");
            var joined = scope.Client.PostAsync("/v1/detect", ServeTestSupport.Body(jpeg));
            await StreamTestSupport.Until(() => Task.FromResult(scope.Server.Batcher.Count == 2), TimeSpan.FromSeconds(10), "a frame and a request queued");
            gated.Open();

            using (var first = await held) Assert.Equal(1, (await ServeTestSupport.JsonOf(first)).GetProperty("speed").GetProperty("batch_size").GetInt32());
            using (var second = await joined) Assert.Equal(2, (await ServeTestSupport.JsonOf(second)).GetProperty("speed").GetProperty("batch_size").GetInt32());
            var frame = (await events.WaitFor(e => e.Count > 0, TimeSpan.FromSeconds(10), "the stream's first result"))[0].Data;
            Assert.Equal(1, frame.GetProperty("frame").GetInt32());
            Assert.Equal(2, frame.GetProperty("speed").GetProperty("batch_size").GetInt32());   // one frame in flight: the other was the request

            // and under load from three clients the stream's frames keep joining their batches
            var clients = Enumerable.Range(0, 3).Select(_ => Task.Run(async () =>
            {
                for (int i = 0; i < 8; i++)
                {
                    using var response = await scope.Client.PostAsync("/v1/detect", ServeTestSupport.Body(jpeg));
                    Assert.Equal(HttpStatusCode.OK, response.StatusCode);
                }
            })).ToArray();
            await Task.WhenAll(clients);
            var streamBatches = events.Frames.Select(f => f.GetProperty("speed").GetProperty("batch_size").GetInt32()).ToList();
            log.WriteLine($"stream batches {string.Join(",", streamBatches)}");
            string metrics = await scope.MetricsText();
            double batches = ServeTestSupport.Metric(metrics, "osprey_batch_size_count");
            double single = ServeTestSupport.Metric(metrics, "osprey_batch_size_bucket", ("le", "1"));
            Assert.True(batches - single >= 1, $"{batches} batches, {single} of one image");
            Assert.True(ServeTestSupport.Metric(metrics, "osprey_batch_size_sum") > batches);
            Assert.Equal(26, ServeTestSupport.Metric(metrics, "osprey_frames_total", ("source", "request")));
            Assert.True(ServeTestSupport.Metric(metrics, "osprey_frames_total", ("source", id)) >= streamBatches.Count);
        }
        finally
        {
            Directory.Delete(dir, true);
        }
    }

    sealed class Disposer(Action dispose) : IDisposable
    {
        public void Dispose() => dispose();
    }

    /// <summary>A detector whose predictions wait while it is closed (the warm-up at load runs open).</summary>
    sealed class GatedDetector(IDetector inner) : IDetector
    {
        readonly ManualResetEventSlim open = new(true);
        volatile bool waiting;

        public bool Waiting => waiting;
        public string Backend => inner.Backend;
        public IReadOnlyList<string> Names => inner.Names;
        public PredictOptions Options => inner.Options;

        public void Close() => open.Reset();

        public void Open() => open.Set();

        public IReadOnlyList<Prediction> Predict(IReadOnlyList<Mat> bgrImages, IReadOnlyList<string>? sources = null)
        {
            waiting = !open.IsSet;
            open.Wait();
            waiting = false;
            return inner.Predict(bgrImages, sources);
        }

        public void Dispose()
        {
            inner.Dispose();
            open.Dispose();
        }
    }
}
