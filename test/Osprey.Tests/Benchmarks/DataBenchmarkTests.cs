using Osprey.Tests.Data;
using Osprey.Benchmarks;
using Osprey.Data;

namespace Osprey.Tests.Benchmarks;

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
}
