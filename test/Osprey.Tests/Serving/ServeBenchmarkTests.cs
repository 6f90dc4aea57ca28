using Osprey.Benchmarks;
using Osprey.Cli;
using Osprey.Tests.Cli;
using Osprey.Tests.Data;

namespace Osprey.Tests.Serving;

/// <summary>
/// <c>osprey bench serve</c> in small: two synthetic cameras and a request client against the tiny model for 2 s; every
/// part of the report is filled and adds up. The arguments are checked before anything starts.
/// </summary>
public class ServeBenchmarkTests(Xunit.Abstractions.ITestOutputHelper log)
{
    [Fact]
    public async Task TwoStreamsAndAClientGiveAReportThatAddsUp()
    {
        string dir = DataTestFiles.NewTempDir();
        try
        {
            string model = ServeTestSupport.WriteTinyModel(dir, "a", seed: 1);
            var options = new ServeBenchOptions
            {
                Model = model, Predict = ServeTestSupport.TinyOptions, Streams = 2, Clients = 1, Fps = 15, Width = 160, Height = 120,
                Warmup = TimeSpan.FromSeconds(1), Duration = TimeSpan.FromSeconds(2), Images = Path.Combine(DataTestFiles.SharedData, "images"),
            };
            var report = await ServeBenchmark.RunAsync(options);
            log.WriteLine(string.Join("\n", report.Streams.Select(s => $"{s.Id}: {s.Fps:0.0} fps, p50 {s.Latency?.Median:0} ms, {s.Frames} frames, {s.Dropped} dropped")));
            log.WriteLine($"requests {report.Requests.Answered}; batch {report.MeanBatch:0.00}; server {report.ServerImagesPerSecond:0} vs bare {report.BareImagesPerSecond:0} images/s");

            Assert.Equal(new[] { "cam0", "cam1" }, report.Streams.Select(s => s.Id));
            Assert.Equal("onnxruntime", report.Backend);                       // backend=auto on the CPU
            Assert.InRange(report.Seconds, 1.9, 4);
            // two 15 fps cameras over the measured time: never more, and at least a third (a busy machine skips timer ticks)
            double nominal = 2 * 15 * report.Seconds;
            Assert.InRange(report.FramesSent, nominal / 3, nominal * 1.1 + 4);
            foreach (var stream in report.Streams)
            {
                Assert.True(stream.Frames > 0 && stream.Latency is not null, $"{stream.Id}: no results");
                Assert.InRange(stream.Fps, 1, 16);
                Assert.True(stream.Latency!.Median > 0);
                Assert.Equal(0, stream.Reconnects);
            }
            Assert.True(report.Requests.Answered > 0 && report.Requests.Failed == 0);
            Assert.InRange(report.BatchSizes.Sum(b => b.Share), 0.999, 1.001);
            Assert.True(report.MeanBatch >= 1);
            Assert.Equal(Math.Max(1, (int)Math.Round(report.MeanBatch)), report.BareBatch);
            // the server predicted what the streams and the client were answered, give or take the batches at the edges
            double answered = (report.Streams.Sum(s => s.Frames) + report.Requests.Answered) / report.Seconds;
            Assert.InRange(report.ServerImagesPerSecond, 0.7 * answered, 1.3 * answered + 5);
            Assert.True(report.BareImagesPerSecond > 0 && double.IsFinite(report.Ratio));
        }
        finally
        {
            Directory.Delete(dir, true);
        }
    }

    [Theory]
    [InlineData("streams=0", "streams=0: bench serve needs at least one stream")]
    [InlineData("clients=-1", "clients=-1: must be ≥ 0")]
    [InlineData("duration=0.5", "duration=0.5: bench serve measures at least 1 s")]
    [InlineData("backend=tensorrt", "backend=tensorrt: expected one of")]
    public void BadArgumentsAreUsageErrors(string argument, string says)
    {
        var (code, _, err) = CliAppTests.Run("bench", "serve", argument);
        Assert.Equal(CliApp.UsageError, code);
        Assert.Contains(says, err);
    }
}
