using System.Diagnostics;
using System.Net;
using System.Net.Http.Json;
using Osprey.Cli;
using Osprey.Config;
using Osprey.Serving;
using Osprey.Tests.Cli;
using Osprey.Tests.Data;
using Osprey.Tests.Inference;
using Spectre.Console;

namespace Osprey.Tests.Serving;

/// <summary><c>watch=True</c> on a weights file, and the <c>osprey serve</c> command end to end.</summary>
public class ServeWatchAndCliTests
{
    [Fact]
    public async Task AWatchedFileIsLoadedWhenItChangesAndAHalfWrittenOneIsRefusedUntilComplete()
    {
        string dir = DataTestFiles.NewTempDir();
        try
        {
            string a = ServeTestSupport.WriteTinyModel(dir, "a", seed: 1), b = ServeTestSupport.WriteTinyModel(dir, "b", seed: 2);
            string best = Path.Combine(dir, "best.safetensors");
            File.Copy(a, best);
            File.Copy(Path.ChangeExtension(a, ".yaml"), Path.ChangeExtension(best, ".yaml"));
            await using var scope = await ServerScope.StartAsync(new ServeOptions
            {
                Model = best, Predict = ServeTestSupport.TinyOptions, Watch = true, WatchDebounce = TimeSpan.FromMilliseconds(200),
            });
            Assert.Contains($"watching {best}", scope.Events.Single(e => e.Kind == ServeEventKind.Listening).Message);

            var bBytes = File.ReadAllBytes(b);
            File.WriteAllBytes(best, bBytes[..(bBytes.Length / 2)]);                  // a trainer caught mid-write
            var refusal = await WaitFor(scope, ServeEventKind.LoadRefused, 1);
            Assert.Contains(best, refusal.Message);
            Assert.Equal(1, scope.Server.Models.Current!.Version);

            File.WriteAllBytes(best, bBytes);                                         // … and done
            var swap = await WaitFor(scope, ServeEventKind.Swapped, 1);
            Assert.Equal(2, swap.Model!.Version);
            Assert.Equal($"swapped v1 → v2 {best}", swap.Message);

            // the new version answers with b's detections
            using var response = await scope.Client.PostAsync("/v1/detect", ServeTestSupport.Body(ServeTestSupport.Jpeg(96, 64, seed: 7)));
            var json = await ServeTestSupport.JsonOf(response);
            Assert.Equal(2, json.GetProperty("model").GetProperty("version").GetInt32());
            using var predictor = Osprey.Inference.Predictor.Load(b, ServeTestSupport.TinyOptions);
            using var image = OpenCvSharp.Cv2.ImDecode(ServeTestSupport.Jpeg(96, 64, seed: 7), OpenCvSharp.ImreadModes.Color);
            double expected = ServeJson.Round(predictor.Predict(image).Detections[0].Confidence);
            Assert.Equal(expected, json.GetProperty("detections")[0].GetProperty("confidence").GetDouble(), 4);
        }
        finally
        {
            Directory.Delete(dir, true);
        }
    }

    [Fact]
    public async Task ServeCommandPrintsTheUrlAndLoadsAndStopsCleanly()
    {
        var text = new StringWriter();
        var output = TextWriter.Synchronized(text);            // written by the server's threads, read here
        var console = AnsiConsole.Create(new AnsiConsoleSettings
        {
            Out = new AnsiConsoleOutput(output), Ansi = AnsiSupport.No, ColorSystem = ColorSystemSupport.NoColors,
        });
        console.Profile.Width = 400;
        using var stop = new CancellationTokenSource();
        var args = ArgsParser.Parse(new[] { $"model={ReferenceDetections.OnnxPath}", "port=0", "max_batch=2", "max_queue=8" });
        var run = Task.Run(() => new ServeCommand(stop.Token).Execute(args, console));

        string Output()
        {
            lock (output) return text.ToString();
        }
        var clock = Stopwatch.StartNew();
        while (!Output().Contains("osprey serve: http://127.0.0.1:"))
        {
            Assert.False(run.IsCompleted, $"serve ended early: {Output()} {run.Exception}");
            Assert.True(clock.Elapsed < TimeSpan.FromSeconds(30), "no URL printed in 30 s: " + Output());
            await Task.Delay(20);
        }
        string url = System.Text.RegularExpressions.Regex.Match(Output(), @"osprey serve: (http://127\.0\.0\.1:\d+)").Groups[1].Value;
        Assert.Contains($"model v1 {ReferenceDetections.OnnxPath} (onnxruntime, imgsz 640, 80 classes), max_batch=2", Output());
        Assert.Contains($"loaded v1 {ReferenceDetections.OnnxPath}", Output());
        using (var client = new HttpClient { BaseAddress = new Uri(url) })
        {
            Assert.Equal(HttpStatusCode.OK, (await client.GetAsync("/health")).StatusCode);
            string missing = Path.Combine(Path.GetTempPath(), "osprey-no-such-model.onnx");
            Assert.Equal(HttpStatusCode.NotFound, (await client.PostAsJsonAsync("/v1/models", new { model = missing })).StatusCode);
            Assert.Contains($"refused: ONNX file '{missing}' not found", Output());
            Assert.Contains("(still serving v1)", Output());
        }
        await stop.CancelAsync();
        Assert.Equal(0, await run.WaitAsync(TimeSpan.FromSeconds(30)));
        Assert.Contains("stopping: answering the requests in flight", Output());
        Assert.Contains("stopped after", Output());
    }

    [Fact]
    public void ServeWithAMissingModelFailsNamingIt()
    {
        string missing = Path.Combine(Path.GetTempPath(), "osprey-no-such-model.onnx");
        var (code, _, err) = CliAppTests.Run("serve", $"model={missing}", "port=0");
        Assert.Equal(CliApp.Failure, code);
        Assert.Contains($"osprey: error: ONNX file '{missing}' not found", err);
        var (usage, _, usageErr) = CliAppTests.Run("serve", "port=0");
        Assert.Equal(CliApp.UsageError, usage);
        Assert.Contains("serve needs model=", usageErr);
        foreach (var (arg, says) in new[] { ("max_batch=0", "max_batch=0: must be ≥ 1"), ("max_queue=0", "max_queue=0: must be ≥ 1"),
                     ("max_delay_ms=-1", "max_delay_ms=-1: must be ≥ 0"), ("port=70000", "port=70000: must be 0"), ("backend=tensorrt", "backend=tensorrt: expected one of") })
        {
            var (badCode, _, badErr) = CliAppTests.Run("serve", $"model={missing}", arg);
            Assert.Equal(CliApp.UsageError, badCode);
            Assert.Contains(says, badErr);
        }
    }

    static async Task<ServeEvent> WaitFor(ServerScope scope, ServeEventKind kind, int count)
    {
        var clock = Stopwatch.StartNew();
        while (true)
        {
            var events = scope.Events.Where(e => e.Kind == kind).ToList();
            if (events.Count >= count) return events[count - 1];
            Assert.True(clock.Elapsed < TimeSpan.FromSeconds(20),
                $"no {kind} event in 20 s; events: {string.Join(" | ", scope.Events.Select(e => e.Message))}");
            await Task.Delay(20);
        }
    }
}
