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
    public void PhasesAreTimedInTheSameRuns()
    {
        int calls = 0;
        var (first, second, total) = Latency.MeasurePhases(lap =>
        {
            calls++;
            Thread.Sleep(12);
            lap();
            Thread.Sleep(4);
        }, warmup: 1, runs: 3);
        Assert.Equal(4, calls);
        for (int i = 0; i < 3; i++)
        {
            Assert.True(first.Milliseconds[i] >= 12 && second.Milliseconds[i] >= 4, $"run {i}: {first.Milliseconds[i]}, {second.Milliseconds[i]}");
            Assert.Equal(total.Milliseconds[i], first.Milliseconds[i] + second.Milliseconds[i], 9);
        }
        Assert.Throws<InvalidOperationException>(() => Latency.MeasurePhases(_ => { }, warmup: 0, runs: 1));
    }

    // A backend's row: forward median, post-processing median, then the total's mean, median, p90.
    static double[] Row(string output, string backend)
    {
        var m = Regex.Match(output, Regex.Escape(backend) + @"\s+(\d+\.\d{3})\s+(\d+\.\d{3})\s+(\d+\.\d{3})\s+(\d+\.\d{3})\s+(\d+\.\d{3})");
        Assert.True(m.Success, $"no {backend} row in:\n{output}");
        return m.Groups.Values.Skip(1).Select(g => double.Parse(g.Value, CultureInfo.InvariantCulture)).ToArray();
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
            var torch = Row(output, "TorchSharp (fused)");
            var ort = Row(output, "ONNX Runtime (exported)");
            foreach (var (forward, post, mean, median, p90) in new[] { (torch[0], torch[1], torch[2], torch[3], torch[4]), (ort[0], ort[1], ort[2], ort[3], ort[4]) })
            {
                Assert.True(forward > 0 && post > 0 && median > 0 && mean > 0, output);
                Assert.True(p90 >= median, output);
            }
            Assert.Contains($"{yaml}: batch 1 at 64 on a random image, CPU", output);
            Assert.Contains("3 warm-up + 5 timed runs each", output);
            Assert.Contains("post-processing: NMS (conf>0.250, iou 0.700)", output);
            var ratios = Regex.Match(output, @"ratio TorchSharp / ONNX Runtime \(medians\): forward (\d+\.\d{3}), total (\d+\.\d{3})");
            Assert.True(ratios.Success, output);
            // the printed medians are rounded to 0.0005 ms: the quotient of the printed values is within that of the ratio
            foreach (var (ratio, t, o) in new[] { (ratios.Groups[1].Value, torch[0], ort[0]), (ratios.Groups[2].Value, torch[3], ort[3]) })
            {
                double quotient = t / o, printed = double.Parse(ratio, CultureInfo.InvariantCulture);
                double slack = 0.0005 + quotient * (0.0005 / t + 0.0005 / o) * 1.01;
                Assert.True(Math.Abs(printed - quotient) <= slack, $"ratio {printed} vs medians' quotient {quotient}\n{output}");
            }
            Assert.Equal(new[] { "tiny.yaml" }, Directory.GetFiles(dir).Select(Path.GetFileName)); // the export went to a temporary folder
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    /// <summary>
    /// On a real image with real weights (Ultralytics' int8 YOLOv8n on bus.jpg) NMS sees candidates and both backends keep
    /// the same detections (the predict reference: 4 persons and the bus at 640); a YOLOv10 head is post-processed without NMS.
    /// </summary>
    [Fact]
    public void BenchPredictPostprocessesBothBackendsAlike()
    {
        string bus = Path.Combine(Osprey.Tests.Data.DataTestFiles.SharedData, "images", "bus.jpg");
        var (code, output, err) = CliAppTests.Run("bench", "predict", $"model={Osprey.Tests.Inference.ReferenceDetections.OnnxPath}", $"source={bus}",
            "imgsz=640", "runs=1");
        Assert.Equal("", err);
        Assert.Equal(0, code);
        var nms = Regex.Match(output, @"post-processing: NMS \(conf>0\.250, iou 0\.700\): (\d+) candidates, (\d+) detections \(ONNX Runtime (\d+)\)");
        Assert.True(nms.Success, output);
        int candidates = int.Parse(nms.Groups[1].Value), kept = int.Parse(nms.Groups[2].Value);
        Assert.True(candidates > kept, output);
        Assert.Equal(5, kept);
        Assert.Equal(kept, int.Parse(nms.Groups[3].Value));

        string dir = TestModels.TempDir();
        try
        {
            string yaml = Path.Combine(dir, "tiny-v10.yaml");
            File.WriteAllText(yaml, V10Models.TinyYaml());
            (code, output, err) = CliAppTests.Run("bench", "predict", $"model={yaml}", "imgsz=64", "runs=1", "conf=0");
            Assert.Equal(0, code);
            // conf=0 keeps every row of the top-k: at 64 px there are 8·8 + 4·4 + 2·2 = 84 anchors, so k = min(300, 84).
            Assert.Contains("post-processing: end-to-end head (one-to-one top-300, no NMS), conf>0.000: 84 detections (ONNX Runtime 84)", output);
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
