using Osprey.Tests.Cli;
using Osprey.Tests.Data;
using Osprey.Benchmarks;
using Osprey.Cli;

namespace Osprey.Tests.Benchmarks;

public class BenchDataCliTests
{
    static (int Code, string Out, string Err) Run(params string[] args) => Osprey.Tests.Cli.CliAppTests.Run(args);

    [Fact]
    public void BenchDataNeedsData()
    {
        var (code, _, err) = Run("bench", "data", "imgsz=64");
        Assert.Equal(CliApp.UsageError, code);
        Assert.Equal("osprey: error: bench data needs data=… (e.g. data=coco128.yaml)", err.TrimEnd());
    }

    [Fact]
    public void BenchAloneNamesBenchData()
    {
        var (code, _, err) = Run("bench", "imgsz=64");
        Assert.Equal(CliApp.UsageError, code);
        Assert.StartsWith("osprey: error: 'bench' is not an osprey mode", err);
        Assert.Contains("bench-data", err);
    }

    [SkippableFact]
    public void BenchDataPrintsBothPipelinesAndTheRatios()
    {
        var yaml = Path.Combine(DataTestFiles.SharedData, "coco8", "coco8.yaml");
        var (code, output, err) = Run("bench", "data", $"data={yaml}", "imgsz=64", "epochs=1", "batch=4", "workers=1", "cache=ram");
        Assert.Equal("", err);
        Assert.Equal(0, code);
        Assert.Matches(@"osprey\s+jpeg\s+\d+\s", output);
        Assert.Matches(@"osprey\s+ram\s+\d+\s", output);
        // Osprey's rows are checked above; the reference rows and the ratios need /usr/bin/python3 with cv2 (bench/data_reference.py)
        Skip.If(output.Contains("reference did not run", StringComparison.Ordinal),
            "the Python/OpenCV reference did not run (it needs /usr/bin/python3, or OSPREY_PYTHON, with cv2): " + ReferenceLine(output));
        Assert.Matches(@"reference\s+jpeg\s+\d+\s", output);
        Assert.Matches(@"ratio jpeg: per core \d+\.\d\d×", output);
        Assert.Matches(@"ratio ram: per core \d+\.\d\d×", output);
    }

    static string ReferenceLine(string output) =>
        output.Split('\n').FirstOrDefault(l => l.Contains("reference did not run", StringComparison.Ordinal))?.Trim() ?? "";
}
