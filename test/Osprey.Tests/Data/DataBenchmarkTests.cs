using Osprey.Benchmarks;
using Osprey.Data;

namespace Osprey.Tests.Data;

public class DataBenchmarkTests
{
    [Fact]
    public void BenchmarkRunsOnCoco8()
    {
        var yaml = Path.Combine(DataTestFiles.SharedData, "coco8", "coco8.yaml");
        var options = new DataBenchmarkOptions(yaml, ImageSize: 128, Workers: 2, Samples: 8, BatchSize: 4, CacheDirectory: DataTestFiles.NewTempDir());
        var result = DataBenchmark.Run(options, ImageCacheMode.Ram);
        Assert.Equal("ram", result.Mode);
        Assert.True(result.Samples >= 8);
        Assert.True(result.SamplesPerSecond > 0);
    }

    /// <summary>Prints the real numbers when OSPREY_DATA_BENCH=1 (not part of the normal run).</summary>
    [Fact]
    public void FullBenchmarkWhenAsked()
    {
        if (Environment.GetEnvironmentVariable("OSPREY_DATA_BENCH") != "1") return;
        var yaml = Path.Combine(DataTestFiles.SharedData, "coco128", "coco128.yaml");
        var script = Path.Combine(DataTestFiles.RepoRoot, "bench", "data_reference.py");
        var c = DataBenchmark.Compare(new DataBenchmarkOptions(yaml, Workers: int.Parse(Environment.GetEnvironmentVariable("OSPREY_DATA_BENCH_WORKERS") ?? "2"), Samples: int.Parse(Environment.GetEnvironmentVariable("OSPREY_DATA_BENCH_SAMPLES") ?? "512"), CacheDirectory: DataTestFiles.NewTempDir()), script);
        var lines = c.Osprey.Concat(c.Reference).Select(t => $"{t.Pipeline} {t.Mode}: {t.SamplesPerSecond:F1} samples/s, {t.SamplesPerSecondPerCore:F1}/core")
            .Append($"ratio per core jpeg {c.PerCoreRatio("jpeg"):F2} ram {c.PerCoreRatio("ram"):F2} {c.ReferenceError}");
        File.WriteAllLines(Path.Combine(Path.GetTempPath(), "osprey-data-bench.txt"), lines);
    }
}
