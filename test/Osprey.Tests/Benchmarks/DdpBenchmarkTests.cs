using Osprey.Benchmarks;
using Osprey.Cli;
using Osprey.Config;
using Osprey.Distributed;
using Osprey.Training;

namespace Osprey.Tests.Benchmarks;

public class DdpBenchmarkTests
{
    static (int Code, string Out, string Err) Run(params string[] args) => Osprey.Tests.Cli.CliAppTests.Run(args);

    static OspreyArgs Args(params string[] tokens)
    {
        return ArgsParser.Parse(tokens, new BenchDdpCommand().Defaults());
    }

    [Fact]
    public void DefaultsAreYoloV8nAt320WithBatch16Over2RanksAnd10Steps()
    {
        var o = BenchDdpCommand.Options(Args());
        Assert.Equal(new StepBenchmarkOptions("yolov8n.yaml", 16, 320, 10, 2), o.Steps);
        Assert.Equal(2, o.World);
        Assert.Equal(8, o.PredictWorld);
        Assert.Null(o.StepSeconds);
        Assert.Null(o.BusBytesPerSecond);
    }

    [Fact]
    public void StepMsAndBusbwArriveInSecondsAndBytesPerSecond()
    {
        var o = BenchDdpCommand.Options(Args("model=yolov8s.yaml", "imgsz=128", "batch=8", "steps=3", "nproc=4", "step_ms=38.3", "busbw=450"));
        Assert.Equal(new StepBenchmarkOptions("yolov8s.yaml", 8, 128, 3, 2), o.Steps);
        Assert.Equal(4, o.World);
        Assert.Equal(0.0383, o.StepSeconds!.Value, 1e-12);
        Assert.Equal(450e9, o.BusBytesPerSecond!.Value, 1e-3);
    }

    [Theory]
    [InlineData("steps=0", "steps=0: bench ddp needs steps ≥ 1 (timed training steps)")]
    [InlineData("batch=15", "batch=15 does not split evenly over nproc=2 ranks: use a multiple of 2")]
    [InlineData("imgsz=100", "imgsz=100: bench ddp needs a multiple of 32")]
    [InlineData("busbw=-1", "busbw=-1: a bandwidth must be positive")]
    [InlineData("step_ms=0", "step_ms=0: a step time must be positive")]
    public void BadArgumentsAreUsageErrorsNamingTheArgument(string token, string message)
    {
        var (code, output, err) = Run("bench", "ddp", token);
        Assert.Equal(CliApp.UsageError, code);
        Assert.Equal($"osprey: error: {message}", err.TrimEnd());
        Assert.Equal("", output);
    }

    [Fact]
    public void Device0TakesTheCudaPathWhichSaysWhenCudaIsMissing()
    {
        // CPU build: the CUDA device is resolved first and fails with the fix; a CUDA build runs the NCCL path (one rank).
        var (code, _, err) = Run("bench", "ddp", "device=0", "steps=1", "imgsz=64", "batch=2");
        if (Osprey.Runtime.TorchBackend.CudaAvailable)
        {
            Assert.Equal("", err);
            Assert.Equal(0, code);
            return;
        }
        Assert.Equal(CliApp.Failure, code);
        Assert.StartsWith("osprey: error: device=0 asks for CUDA, but CUDA is not available", err);
    }

    [Fact]
    public void DefaultBuffersAreTheYoloV8nAndV8xGradientsFromTheirParameterCounts()
    {
        // Ultralytics' summaries: YOLOv8n 3,157,184 gradients, YOLOv8x 68,229,632 (the 16 DFL weights are frozen); float32.
        Assert.Equal(3_157_184L * 4, DdpBenchmark.GradientBytes("yolov8n.yaml"));
        Assert.Equal(new long[] { 1 << 20, 3_157_184L * 4, 25L << 20, 68_229_632L * 4 }, DdpBenchmark.DefaultBufferBytes("yolov8n.yaml"));
    }

    [Fact]
    public void TheBuffersVariableReplacesTheSizesAndIsChecked()
    {
        var options = BenchDdpCommand.Options(Args());
        string? saved = Environment.GetEnvironmentVariable(DdpBenchmark.BuffersVariable);
        try
        {
            Environment.SetEnvironmentVariable(DdpBenchmark.BuffersVariable, "4096, 1048576");
            Assert.Equal(new long[] { 4096, 1_048_576 }, DdpBenchmark.BufferBytes(options));
            Environment.SetEnvironmentVariable(DdpBenchmark.BuffersVariable, "4096,1MB");
            var e = Assert.Throws<ArgumentsException>(() => DdpBenchmark.BufferBytes(options));
            Assert.Equal($"{DdpBenchmark.BuffersVariable}=4096,1MB: '1MB' is not a buffer size in bytes (≥ 4)", e.Message);
            Assert.Equal(new long[] { 8, 16 }, DdpBenchmark.BufferBytes(options with { BufferBytes = new long[] { 8, 16 } }));
        }
        finally
        {
            Environment.SetEnvironmentVariable(DdpBenchmark.BuffersVariable, saved);
        }
    }

    static StepTiming Timing(int world, double forward, double backward, double optimizer, params long[] buckets) =>
        new(world, 1, 16, 320, new[] { forward + backward + optimizer }, new[] { forward }, new[] { backward }, new[] { 0.0 },
            new[] { optimizer }, buckets, Array.Empty<RankBreakdown>(), world);

    [Fact]
    public void ModelUsesTheMeasuredTwoRankFitAndTheGivenStepTime()
    {
        // 2 MPI ranks: 1 MB in 1 ms, 101 MB in 101 ms → α = 0, B = 1 GB/s (W = 2, factor 1).
        var allReduce = new[] { new AllReduceTiming("mpi", 2, 1_000_000, 0.001), new AllReduceTiming("mpi", 2, 101_000_000, 0.101) };
        var single = Timing(1, 0.1, 0.2, 0.1, 10_000_000);
        var options = BenchDdpCommand.Options(Args("step_ms=40"));
        var (cost, prediction, notes) = DdpBenchmark.Model(options, single, allReduce, Array.Empty<AllReduceTiming>());
        Assert.Equal(0, cost!.StepLatencySeconds, 1e-12);
        Assert.Equal(1e9, cost.BusBytesPerSecond, 1e-3);
        // 8 GPUs: compute 40 ms in shares ¼ ½ ¼; one 10 MB bucket: 1.75 · 1e7 / 1e9 = 17.5 ms, ready only at the end of backward
        Assert.Equal(0.010, prediction!.Compute.Forward, 1e-12);
        Assert.Equal(0.020, prediction.Compute.Backward, 1e-12);
        Assert.Equal(0.010, prediction.Compute.Optimizer, 1e-12);
        Assert.Equal(0.0575, prediction.SerialStep, 1e-12);
        Assert.Equal(0.0575, prediction.OverlappedStep, 1e-12);
        Assert.Contains(notes, n => n.StartsWith("compute per GPU step: 40 ms given (step_ms)", StringComparison.Ordinal));
    }

    [Fact]
    public void OneGpuNeedsBusbwAndAddsTheOneRankNcclCost()
    {
        var oneRank = new[] { new AllReduceTiming("nccl", 1, 1_000_000, 20e-6), new AllReduceTiming("nccl", 1, 101_000_000, 120e-6) };
        var single = Timing(1, 0.01, 0.02, 0.002, 10_000_000);
        var (none, noPrediction, notes) = DdpBenchmark.Model(BenchDdpCommand.Options(Args("device=cpu")), single,
            Array.Empty<AllReduceTiming>(), oneRank);
        Assert.Null(none);
        Assert.Null(noPrediction);
        Assert.Contains(notes, n => n.Contains("give busbw=", StringComparison.Ordinal));

        var (cost, prediction, _) = DdpBenchmark.Model(BenchDdpCommand.Options(Args("busbw=350")), single,
            Array.Empty<AllReduceTiming>(), oneRank);
        // local line through (1 MB, 20 µs) and (101 MB, 120 µs): 19 µs + 1 ps/byte; ring 1.75 · 1e7 / 350e9 = 50 µs
        Assert.Equal(0, cost!.StepLatencySeconds);
        Assert.Equal(350e9, cost.BusBytesPerSecond);
        Assert.Equal(19e-6, cost.LocalSeconds, 1e-15);
        Assert.Equal(1e-12, cost.LocalSecondsPerByte, 1e-20);
        Assert.Equal(0.032 + 50e-6 + 19e-6 + 10e-6, prediction!.SerialStep, 1e-12);
    }
}
