using System.Collections.Concurrent;
using System.Diagnostics;
using System.Net;
using System.Net.Http.Json;
using OpenCvSharp;
using Osprey.Inference;
using Osprey.Serving;
using Osprey.Tests.Data;

namespace Osprey.Tests.Serving;

/// <summary>
/// The issue's proof of hot swapping: 20 swaps between two models under continuous requests from three clients, with
/// refused loads (corrupt files, another class count, a missing file) in the middle.
/// </summary>
public class HotSwapTests(Xunit.Abstractions.ITestOutputHelper log)
{
    sealed record Answer(long Start, long End, int Status, int Version, string Path, double[] Confidences, string Body);

    sealed record Load(int Version, string Path, long Called, long Returned);

    [Fact]
    public async Task TwentySwapsUnderContinuousLoadFailNoRequestAndEveryAnswerNamesAVersionServingMeanwhile()
    {
        string dir = DataTestFiles.NewTempDir();
        try
        {
            string a = ServeTestSupport.WriteTinyModel(dir, "a", seed: 1), b = ServeTestSupport.WriteTinyModel(dir, "b", seed: 2);
            var bad = BadModels(dir, a);
            var jpeg = ServeTestSupport.Jpeg(96, 64, seed: 7);
            var expected = new Dictionary<string, double[]> { [a] = Reference(a, jpeg), [b] = Reference(b, jpeg) };
            Assert.True(expected[a].Zip(expected[b]).Max(p => Math.Abs(p.First - p.Second)) > 0.01, $"the two models answer alike ([{string.Join(", ", expected[a])}] and [{string.Join(", ", expected[b])}]): the test could not tell them apart");

            var loads = new List<Load> { new(1, a, long.MinValue, long.MinValue) };
            var clock = Stopwatch.StartNew();
            await using var scope = await ServerScope.StartAsync(new ServeOptions
            {
                Model = a, Predict = ServeTestSupport.TinyOptions, MaxBatch = 4, MaxDelay = TimeSpan.FromMilliseconds(2),
            });
            var answers = new ConcurrentQueue<Answer>();
            using var stop = new CancellationTokenSource();
            var clients = Enumerable.Range(0, 3).Select(_ => Task.Run(() => Client(scope.Client, jpeg, clock, answers, stop.Token))).ToArray();

            for (int i = 1; i <= 20; i++)
            {
                string path = i % 2 == 1 ? b : a;
                long called = clock.ElapsedTicks;
                using var response = await scope.Client.PostAsJsonAsync("/v1/models", new { model = path });
                long returned = clock.ElapsedTicks;
                var body = await response.Content.ReadAsStringAsync();
                Assert.True(response.StatusCode == HttpStatusCode.OK, body);
                var json = await ServeTestSupport.JsonOf(response);
                Assert.Equal(i + 1, json.GetProperty("model").GetProperty("version").GetInt32());
                Assert.Equal(i, json.GetProperty("previous").GetProperty("version").GetInt32());
                loads.Add(new Load(i + 1, path, called, returned));
                if (i == 10) await AssertRefused(scope, bad, servingVersion: 11);
                await WaitForAnswerFrom(i + 1, answers, clients);        // every version answers someone before the next swap
            }
            await stop.CancelAsync();
            await Task.WhenAll(clients);

            var all = answers.ToArray();
            var failed = all.Where(x => x.Status != 200).ToList();
            Assert.True(failed.Count == 0, $"{failed.Count} of {all.Length} requests failed, e.g. {failed.FirstOrDefault()?.Status}: {failed.FirstOrDefault()?.Body}");
            foreach (var answer in all)
            {
                var load = loads.SingleOrDefault(l => l.Version == answer.Version);
                Assert.True(load is not null, $"version {answer.Version} was never loaded");
                Assert.Equal(load.Path, answer.Path);
                // the version must have been serving at some moment while the request was in flight: loaded (its load call
                // began) before the answer came, and not yet replaced (the next load call returned) when the request was sent
                long servedUntil = answer.Version < loads.Count ? loads[answer.Version].Returned : long.MaxValue;
                Assert.True(load.Called <= answer.End && answer.Start <= servedUntil,
                    $"v{answer.Version} answered a request in flight [{answer.Start}, {answer.End}] outside its time [{load.Called}, {servedUntil}]");
                // and the detections are that model's
                double error = answer.Confidences.Zip(expected[answer.Path]).Max(p => Math.Abs(p.First - p.Second));
                Assert.True(answer.Confidences.Length == 3 && error < 2e-4,
                    $"v{answer.Version} ({answer.Path}) answered [{string.Join(", ", answer.Confidences)}], its model gives [{string.Join(", ", expected[answer.Path])}]");
            }
            Assert.Equal(Enumerable.Range(1, 21), all.Select(x => x.Version).Distinct().Order());
            log.WriteLine($"{all.Length} requests over 20 swaps in {clock.Elapsed.TotalSeconds:0.0} s, all 200; per version: " +
                string.Join(" ", all.GroupBy(x => x.Version).OrderBy(g => g.Key).Select(g => $"v{g.Key}:{g.Count()}")));

            string metrics = await scope.MetricsText();
            Assert.Equal(20, ServeTestSupport.Metric(metrics, "osprey_model_swaps_total", ("result", "ok")));
            Assert.Equal(4, ServeTestSupport.Metric(metrics, "osprey_model_swaps_total", ("result", "refused")));
            Assert.Equal(21, ServeTestSupport.Metric(metrics, "osprey_model_version"));
            Assert.Equal(all.Length, ServeTestSupport.Metric(metrics, "osprey_frames_total", ("source", "request")));
            Assert.Equal(20, scope.Events.Count(e => e.Kind == ServeEventKind.Swapped));
        }
        finally
        {
            Directory.Delete(dir, true);
        }
    }

    static async Task Client(HttpClient client, byte[] jpeg, Stopwatch clock, ConcurrentQueue<Answer> answers, CancellationToken stop)
    {
        while (!stop.IsCancellationRequested)
        {
            long start = clock.ElapsedTicks;
            using var response = await client.PostAsync("/v1/detect", ServeTestSupport.Body(jpeg), CancellationToken.None);
            long end = clock.ElapsedTicks;
            string body = await response.Content.ReadAsStringAsync(CancellationToken.None);
            if (response.StatusCode != HttpStatusCode.OK)
            {
                answers.Enqueue(new Answer(start, end, (int)response.StatusCode, 0, "", Array.Empty<double>(), body));
                continue;
            }
            var json = System.Text.Json.JsonDocument.Parse(body).RootElement;
            var model = json.GetProperty("model");
            answers.Enqueue(new Answer(start, end, 200, model.GetProperty("version").GetInt32(), model.GetProperty("path").GetString()!,
                json.GetProperty("detections").EnumerateArray().Select(d => d.GetProperty("confidence").GetDouble()).ToArray(), body));
        }
    }

    static async Task WaitForAnswerFrom(int version, ConcurrentQueue<Answer> answers, Task[] clients)
    {
        var deadline = Stopwatch.StartNew();
        while (!answers.Any(x => x.Version == version || x.Status != 200))
        {
            Assert.True(deadline.Elapsed < TimeSpan.FromSeconds(20), $"no answer from v{version} within 20 s");
            Assert.DoesNotContain(clients, c => c.IsFaulted);
            await Task.Delay(5);
        }
    }

    // Each model's top-3 confidences on the picture, predicted directly and rounded as the JSON rounds them.
    static double[] Reference(string path, byte[] jpeg)
    {
        using var predictor = Predictor.Load(path, ServeTestSupport.TinyOptions);
        using var image = Cv2.ImDecode(jpeg, ImreadModes.Color);
        return predictor.Predict(image).Detections.Select(d => ServeJson.Round(d.Confidence)).ToArray();
    }

    // Loads that must be refused: (path, status, what the error says).
    static (string Path, HttpStatusCode Status, string Says)[] BadModels(string dir, string good)
    {
        string corrupt = Path.Combine(dir, "corrupt.safetensors");
        File.WriteAllBytes(corrupt, ModelHostTests.RandomBytes(20_000, seed: 11));
        File.Copy(Path.ChangeExtension(good, ".yaml"), Path.ChangeExtension(corrupt, ".yaml"));
        string corruptOnnx = Path.Combine(dir, "corrupt.onnx");
        File.WriteAllBytes(corruptOnnx, ModelHostTests.RandomBytes(20_000, seed: 12));
        string twoClasses = ServeTestSupport.WriteTinyModel(dir, "two", seed: 3, nc: 2);
        return new[]
        {
            (corrupt, HttpStatusCode.UnprocessableEntity, "not a model Osprey can load"),
            (corruptOnnx, HttpStatusCode.UnprocessableEntity, "not a model Osprey can load"),
            (twoClasses, HttpStatusCode.UnprocessableEntity, "has 2 classes but the serving model v11"),
            (Path.Combine(dir, "missing.safetensors"), HttpStatusCode.NotFound, "not found"),
        };
    }

    static async Task AssertRefused(ServerScope scope, (string Path, HttpStatusCode Status, string Says)[] bad, int servingVersion)
    {
        foreach (var (path, status, says) in bad)
        {
            using var response = await scope.Client.PostAsJsonAsync("/v1/models", new { model = path });
            string error = (await ServeTestSupport.JsonOf(response)).GetProperty("error").GetString()!;
            Assert.True(status == response.StatusCode, $"{path}: {(int)response.StatusCode} {error}");
            Assert.Contains(path, error);
            Assert.Contains(says, error);
            var current = (await ServeTestSupport.JsonOf(await scope.Client.GetAsync("/v1/models"))).GetProperty("model");
            Assert.Equal(servingVersion, current.GetProperty("version").GetInt32());
        }
        using var notJson = await scope.Client.PostAsync("/v1/models", new StringContent("{\"model\": ", System.Text.Encoding.UTF8, "application/json"));
        Assert.Equal(HttpStatusCode.BadRequest, notJson.StatusCode);
        Assert.Contains("is not valid JSON", (await ServeTestSupport.JsonOf(notJson)).GetProperty("error").GetString());
        using var noModel = await scope.Client.PostAsJsonAsync("/v1/models", new { path = "x" });
        Assert.Equal(HttpStatusCode.BadRequest, noModel.StatusCode);
        Assert.Contains("no \"model\" given", (await ServeTestSupport.JsonOf(noModel)).GetProperty("error").GetString());
    }
}
