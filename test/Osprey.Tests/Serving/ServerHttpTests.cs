using System.Net;
using System.Net.Http.Headers;
using System.Text.Json;
using Osprey.Inference;
using Osprey.Serving;
using Osprey.Tests.Inference;

namespace Osprey.Tests.Serving;

/// <summary>
/// <c>osprey serve</c> on a real Kestrel (127.0.0.1, port 0) with Ultralytics' int8 YOLOv8n export in ONNX Runtime:
/// detections against ONNX Runtime's reference JSON, the model, health and metrics routes.
/// </summary>
public class ServerHttpTests
{
    internal static ServeOptions OnnxOptions => new() { Model = ReferenceDetections.OnnxPath, MaxBatch = 4, MaxDelay = TimeSpan.FromMilliseconds(5) };

    // The reference's own tolerance (its "_what" field): confidence ±0.02, box ±3 px.
    internal static Prediction ToPrediction(JsonElement answer)
    {
        var detections = answer.GetProperty("detections").EnumerateArray().Select(d =>
        {
            var box = d.GetProperty("box");
            return new Detection(new Box(box.GetProperty("x1").GetSingle(), box.GetProperty("y1").GetSingle(), box.GetProperty("x2").GetSingle(),
                box.GetProperty("y2").GetSingle()), d.GetProperty("confidence").GetSingle(), d.GetProperty("class").GetInt32(), d.GetProperty("name").GetString()!);
        }).ToList();
        var image = answer.GetProperty("image");
        return new Prediction(null, image.GetProperty("width").GetInt32(), image.GetProperty("height").GetInt32(), detections, Array.Empty<string>());
    }

    [Fact]
    public async Task DetectAnswersOnnxRuntimesReferenceDetectionsWithTheVersionThatMadeThem()
    {
        var expected = ReferenceDetections.Load()
            .Where(e => Path.GetFileName(e.Image) is "bus.jpg" or "zidane.jpg").OrderBy(e => e.Image, StringComparer.Ordinal).ToList();
        Assert.Equal(2, expected.Count);
        await using var scope = await ServerScope.StartAsync(OnnxOptions);
        var problems = new List<string>();
        var names = new List<string>();
        for (int i = 0; i < expected.Count; i++)
        {
            var bytes = File.ReadAllBytes(expected[i].Image);
            // bus.jpg as a raw image/jpeg body, zidane.jpg as a multipart file
            HttpContent content = i == 0 ? ServeTestSupport.Body(bytes) : Multipart(bytes, Path.GetFileName(expected[i].Image));
            using var response = await scope.Client.PostAsync("/v1/detect", content);
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
            var answer = await ServeTestSupport.JsonOf(response);
            Assert.Equal(1, answer.GetProperty("model").GetProperty("version").GetInt32());
            Assert.Equal(ReferenceDetections.OnnxPath, answer.GetProperty("model").GetProperty("path").GetString());
            problems.AddRange(ReferenceDetections.Compare(expected[i], ToPrediction(answer), confTolerance: 0.02f, boxTolerance: 3f));
            names.AddRange(answer.GetProperty("detections").EnumerateArray().Select(d => d.GetProperty("name").GetString()!));
            var speed = answer.GetProperty("speed");
            Assert.True(speed.GetProperty("inference_ms").GetDouble() > 0);
            Assert.Equal(1, speed.GetProperty("batch_size").GetInt32());
        }
        Assert.True(problems.Count == 0, string.Join("\n", problems));
        Assert.Contains("bus", names);
        Assert.Contains("person", names);
        Assert.Contains("tie", names);     // zidane.jpg
    }

    [Fact]
    public async Task ModelsHealthAndMetricsDescribeWhatWasLoadedAndSent()
    {
        var before = DateTimeOffset.UtcNow;
        await using var scope = await ServerScope.StartAsync(OnnxOptions);
        var after = DateTimeOffset.UtcNow;

        var models = (await ServeTestSupport.JsonOf(await scope.Client.GetAsync("/v1/models"))).GetProperty("model");
        Assert.Equal(1, models.GetProperty("version").GetInt32());
        Assert.Equal(ReferenceDetections.OnnxPath, models.GetProperty("path").GetString());
        Assert.Equal("onnxruntime", models.GetProperty("backend").GetString());
        Assert.Equal(640, models.GetProperty("imgsz").GetInt32());
        Assert.Equal(80, models.GetProperty("classes").GetInt32());
        Assert.Equal("person", models.GetProperty("names")[0].GetString());
        Assert.Equal("toothbrush", models.GetProperty("names")[79].GetString());
        var loadedAt = models.GetProperty("loaded_at").GetDateTimeOffset();
        Assert.InRange(loadedAt, before, after);

        using var health = await scope.Client.GetAsync("/health");
        Assert.Equal(HttpStatusCode.OK, health.StatusCode);
        var healthJson = await ServeTestSupport.JsonOf(health);
        Assert.Equal("ok", healthJson.GetProperty("status").GetString());
        Assert.Equal(1, healthJson.GetProperty("model_version").GetInt32());

        // three images at once: the batcher may put them in one, two or three batches; the metrics must add up either way
        var bus = File.ReadAllBytes(Path.Combine(Data.DataTestFiles.SharedData, "images", "bus.jpg"));
        var answers = await Task.WhenAll(Enumerable.Range(0, 3).Select(_ => scope.Client.PostAsync("/v1/detect", ServeTestSupport.Body(bus))));
        Assert.All(answers, a => Assert.Equal(HttpStatusCode.OK, a.StatusCode));
        using var notFound = await scope.Client.GetAsync("/v2/nothing");
        Assert.Equal(HttpStatusCode.NotFound, notFound.StatusCode);

        string metrics = await scope.MetricsText();
        double Value(string name, params (string, string)[] labels) => ServeTestSupport.Metric(metrics, name, labels);
        Assert.Equal(3, Value("osprey_requests_total", ("route", "/v1/detect"), ("code", "200")));
        Assert.Equal(1, Value("osprey_requests_total", ("route", "/v1/models"), ("code", "200")));
        Assert.Equal(1, Value("osprey_requests_total", ("route", "/health"), ("code", "200")));
        Assert.Equal(1, Value("osprey_requests_total", ("route", ServeEndpoints.UnknownRoute), ("code", "404")));
        Assert.Equal(3, Value("osprey_frames_total", ("source", "request")));
        Assert.Equal(3, Value("osprey_batch_size_sum"));
        double batches = Value("osprey_batch_size_count");
        Assert.InRange(batches, 1, 3);
        Assert.Equal(batches, Value("osprey_inference_seconds_count"));
        Assert.Equal(3, Value("osprey_queue_wait_seconds_count"));
        Assert.Equal(3, Value("osprey_request_latency_seconds_count", ("route", "/v1/detect")));
        Assert.Equal(1, Value("osprey_model_version"));
        Assert.Equal(0, Value("osprey_queue_depth"));
        Assert.Equal(0, Value("osprey_dropped_frames_total", ("source", "request")));
        Assert.Contains("osprey_model_swaps_total", metrics);
        Assert.True(Value("process_working_set_bytes") > 0);
        Assert.Equal(batches, scope.Server.Worker.Batches);
    }

    static MultipartFormDataContent Multipart(byte[] bytes, string fileName)
    {
        var file = new ByteArrayContent(bytes);
        file.Headers.ContentType = MediaTypeHeaderValue.Parse("image/jpeg");
        return new MultipartFormDataContent { { new StringContent("a note"), "note" }, { file, "file", fileName } };
    }
}
