using Osprey.Benchmarks;
using Osprey.Distributed;
using Osprey.Training;

namespace Osprey.Tests.Benchmarks;

public class ScalingModelTests
{
    const double Tolerance = 1e-12;

    // forward 10 ms, backward 20 ms, optimiser 2 ms; 8 ranks; two buckets of 10 MB.
    static readonly StepCompute Compute = new(0.010, 0.020, 0.002);

    [Fact]
    public void RingAllReduceTimeIsLatencyPerStepPlusBusFactorTimesBytesOverBandwidth()
    {
        // α 100 µs, B 3.5 GB/s, 10 MB over 8 ranks: 14 · 0.1 ms + 1.75 · 1e7 / 3.5e9 s = 1.4 + 5 ms.
        var cost = new AllReduceCostModel(100e-6, 3.5e9);
        Assert.Equal(0.0064, cost.Seconds(10_000_000, 8), Tolerance);
        Assert.Equal(2 * 100e-6 + 1e7 / 3.5e9, cost.Seconds(10_000_000, 2), Tolerance);
        Assert.Equal(0, cost.Seconds(10_000_000, 1));
        // the local term (one-rank NCCL cost) adds c + d·n
        Assert.Equal(0.0064 + 20e-6 + 1e-12 * 1e7, (cost with { LocalSeconds = 20e-6, LocalSecondsPerByte = 1e-12 }).Seconds(10_000_000, 8), Tolerance);
    }

    [Fact]
    public void WithoutOverlapTheStepIsComputePlusEveryBucket()
    {
        var p = ScalingModel.Predict(Compute, new long[] { 10_000_000, 10_000_000 }, new AllReduceCostModel(100e-6, 3.5e9), 8);
        Assert.Equal(new[] { 0.0064, 0.0064 }, p.BucketSeconds.Select(s => Math.Round(s, 12)));
        Assert.Equal(0.0448, p.SerialStep, Tolerance);
        Assert.Equal(0.032 / 0.0448, p.SerialEfficiency, Tolerance);     // 71.43 %
    }

    [Fact]
    public void WithOverlapEachBucketStartsWhenBackwardHasProducedIt()
    {
        // bucket 1 ready at 10 + 20 · ½ = 20 ms, done 26.4; bucket 2 ready at 30, done 36.4; + optimiser 2 = 38.4 ms
        var p = ScalingModel.Predict(Compute, new long[] { 10_000_000, 10_000_000 }, new AllReduceCostModel(100e-6, 3.5e9), 8);
        Assert.Equal(0.0384, p.OverlappedStep, Tolerance);
        Assert.Equal(0.032 / 0.0384, p.OverlappedEfficiency, Tolerance); // 83.33 %
    }

    [Fact]
    public void WithOverlapBucketsQueueBehindEachOtherWhenCommunicationIsSlower()
    {
        // 15 ms per bucket (α 0, 1.75 · 1e7 / B = 15 ms): bucket 1 20 → 35 ms, bucket 2 ready at 30 but starts at 35 → 50; + 2 = 52 ms
        var cost = new AllReduceCostModel(0, 1.75e7 / 0.015);
        var p = ScalingModel.Predict(Compute, new long[] { 10_000_000, 10_000_000 }, cost, 8);
        Assert.Equal(0.052, p.OverlappedStep, Tolerance);
        Assert.Equal(0.062, p.SerialStep, Tolerance);
        // uneven buckets: 30 MB ready at 10 + 20 · ¾ = 25 ms (45 ms of all-reduce → 70), then 10 MB (15 ms) → 85; + 2 = 87 ms
        var uneven = ScalingModel.Predict(Compute, new long[] { 30_000_000, 10_000_000 }, cost, 8);
        Assert.Equal(0.087, uneven.OverlappedStep, Tolerance);
    }

    [Fact]
    public void OneRankIsPerfectlyEfficient()
    {
        var p = ScalingModel.Predict(Compute, new long[] { 10_000_000 }, new AllReduceCostModel(100e-6, 1e9), 1);
        Assert.Equal(1, p.SerialEfficiency, Tolerance);
        Assert.Equal(1, p.OverlappedEfficiency, Tolerance);
    }

    [Fact]
    public void ScaledComputeKeepsTheMeasuredShares()
    {
        var scaled = new StepCompute(0.1, 0.2, 0.1).ScaledTo(0.040);
        Assert.Equal(0.010, scaled.Forward, Tolerance);
        Assert.Equal(0.020, scaled.Backward, Tolerance);
        Assert.Equal(0.010, scaled.Optimizer, Tolerance);
    }

    [Theory]
    [InlineData(2)]
    [InlineData(4)]
    public void FitRecoversLatencyAndBandwidthFromExactTimes(int world)
    {
        // t = 2(W − 1) · 50 µs + 2(W − 1)/W · n / 2 GB/s at 1, 12.6, 26 and 273 MB
        double alpha = 50e-6, bandwidth = 2e9;
        var measured = new[] { 1_048_576.0, 12_628_736, 26_214_400, 272_918_528 }
            .Select(n => (n, 2.0 * (world - 1) * alpha + 2.0 * (world - 1) / world * n / bandwidth)).ToArray();
        var fit = AllReduceCostModel.Fit(measured, world);
        Assert.Equal(alpha, fit.StepLatencySeconds, 1e-12);
        Assert.Equal(bandwidth, fit.BusBytesPerSecond, 1e-3);
    }

    [Fact]
    public void FitIsTheLineThroughTheSmallestAndTheLargestBuffer()
    {
        // 1 MB in 1.3 ms, 100 MB in 100.3 ms: b = 99 ms / 99 MB = 1 ns/byte, a = 1.3 − 1 = 0.3 ms; the 10 MB time does not move it.
        const double b = 1e-9, a = 0.3e-3;
        foreach (double middle in new[] { 5e-3, 50e-3 })
        {
            var (intercept, slope) = AllReduceCostModel.FitLine(new[] { (1e8, 100.3e-3), (1e7, middle), (1e6, 1.3e-3) });
            Assert.Equal(a, intercept, 1e-14);
            Assert.Equal(b, slope, 1e-20);
        }
        // at 2 ranks: α = a / 2 = 0.15 ms, B = 1 / b = 1 GB/s
        var fit = AllReduceCostModel.Fit(new[] { (1e6, 1.3e-3), (1e8, 100.3e-3) }, 2);
        Assert.Equal(0.15e-3, fit.StepLatencySeconds, 1e-15);
        Assert.Equal(1e9, fit.BusBytesPerSecond, 1e-3);
        // a negative intercept (noise) is no latency
        Assert.Equal(0, AllReduceCostModel.Fit(new[] { (1e6, 0.5e-3), (1e8, 100.3e-3) }, 2).StepLatencySeconds);
    }

    [Fact]
    public void FitRefusesOneRankOneSizeAndShrinkingTimes()
    {
        Assert.Throws<ArgumentException>(() => AllReduceCostModel.Fit(new[] { (1e6, 1e-3), (2e6, 2e-3) }, 1));
        Assert.Throws<ArgumentException>(() => AllReduceCostModel.Fit(new[] { (1e6, 1e-3), (1e6, 2e-3) }, 2));
        Assert.Throws<ArgumentException>(() => AllReduceCostModel.Fit(new[] { (1e6, 2e-3), (2e6, 1e-3) }, 2));
    }

    [Fact]
    public void BusBandwidthIsTwoWMinusOneOverWTimesBytesOverTime()
    {
        // nccl-tests: 12.6 MB in 10 ms at 2 ranks → 1.26 GB/s (factor 1); at 4 ranks factor 1.5 → 1.89 GB/s; one rank: 0
        Assert.Equal(1.26e9, new AllReduceTiming("mpi", 2, 12_600_000, 0.010).BusBytesPerSecond, 1e-3);
        Assert.Equal(1.89e9, new AllReduceTiming("nccl", 4, 12_600_000, 0.010).BusBytesPerSecond, 1e-3);
        Assert.Equal(1.26e9, new AllReduceTiming("nccl", 4, 12_600_000, 0.010).AlgBytesPerSecond, 1e-3);
        Assert.Equal(0, new AllReduceTiming("nccl", 1, 12_600_000, 0.010).BusBytesPerSecond);
        Assert.Equal(1.75, AllReduceTiming.BusFactor(8), Tolerance);
    }
}
