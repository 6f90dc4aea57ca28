using Osprey.Tests.Cli;
using Osprey.Benchmarks;
using System.Globalization;
using System.Text.RegularExpressions;
using Osprey.Cli;
using Osprey.Inference;
using Osprey.Tests.Models;

namespace Osprey.Tests.Benchmarks;

/// <summary><c>osprey bench predict</c>: both backends timed in one run, and the ratio of the medians it prints.</summary>
public class BenchPredictCliTests
{
    [Fact]
    public void StatsAreNumpysMeanMedianAndPercentile()
    {
        var stats = new LatencyStats(new double[] { 5, 1, 3, 2, 4, 10 });
        Assert.Equal(25.0 / 6, stats.Mean, 12);
        Assert.Equal(3.5, stats.Median, 12);        // numpy.median
        Assert.Equal(7.5, stats.P90, 12);           // numpy.percentile(x, 90): rank 4.5 between 5 and 10
        Assert.Equal(3, new LatencyStats(new double[] { 3 }).P90);
        int calls = 0;
        var measured = Latency.Measure(() => calls++, warmup: 2, runs: 4);
        Assert.Equal(6, calls);
        Assert.Equal(4, measured.Milliseconds.Count);
    }

    [Fact]
    public void BenchPredictTimesTorchSharpAndOnnxRuntime()
    {
        string dir = TestModels.TempDir();
        try
        {
            string yaml = Path.Combine(dir, "tiny.yaml");
            File.WriteAllText(yaml, TestModels.TinyYaml(nc: 3));
            var (code, output, err) = CliAppTests.Run("bench", "predict", $"model={yaml}", "imgsz=64", "runs=5");
            Assert.Equal("", err);
            Assert.Equal(0, code);
            static double[] Row(string output, string backend)
            {
                var m = Regex.Match(output, Regex.Escape(backend) + @"\s+(\d+\.\d{3})\s+(\d+\.\d{3})\s+(\d+\.\d{3})");
                Assert.True(m.Success, $"no {backend} row in:\n{output}");
                return m.Groups.Values.Skip(1).Select(g => double.Parse(g.Value, CultureInfo.InvariantCulture)).ToArray();
            }
            var torch = Row(output, "TorchSharp (fused)");
            var ort = Row(output, "ONNX Runtime (exported)");
            foreach (var (mean, median, p90) in new[] { (torch[0], torch[1], torch[2]), (ort[0], ort[1], ort[2]) })
            {
                Assert.True(median > 0 && mean > 0, output);
                Assert.True(p90 >= median, output);
            }
            Assert.Contains($"{yaml}: batch 1 at 64, CPU", output);
            Assert.Contains("3 warm-up + 5 timed runs each", output);
            var ratio = double.Parse(Regex.Match(output, @"ratio TorchSharp / ONNX Runtime \(medians\): (\d+\.\d{3})").Groups[1].Value, CultureInfo.InvariantCulture);
            // the printed medians are rounded to 0.0005 ms: the quotient of the printed values is within that of the ratio
            double quotient = torch[1] / ort[1];
            double slack = 0.0005 + quotient * (0.0005 / torch[1] + 0.0005 / ort[1]) * 1.01;
            Assert.True(Math.Abs(ratio - quotient) <= slack, $"ratio {ratio} vs medians' quotient {quotient}\n{output}");
            Assert.Equal(new[] { "tiny.yaml" }, Directory.GetFiles(dir).Select(Path.GetFileName)); // the export went to a temporary folder
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    [Fact]
    public void BenchPredictChecksItsArguments()
    {
        var (code, _, err) = CliAppTests.Run("bench", "predict", "runs=0");
        Assert.Equal(CliApp.UsageError, code);
        Assert.Equal("osprey: error: runs=0: bench predict needs runs ≥ 1", err.TrimEnd());
        (code, _, err) = CliAppTests.Run("bench", "imgsz=64");
        Assert.Contains("bench-predict", err);
    }
}
