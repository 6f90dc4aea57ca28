using Osprey.Config;
using Osprey.Distributed;
using Osprey.Training;
using static TorchSharp.torch;

namespace Osprey.Tests.Training;

/// <summary>A probe with set memory figures: GB in use at each batch size (null: that size failed).</summary>
internal sealed class FakeProbe(double totalGiB, double reservedGiB, Func<int, double?> gigabytes) : IDeviceMemoryProbe
{
    public List<int> Profiled { get; } = new();
    public string DeviceName => "CUDA:0";
    public DeviceMemory Memory() => new("Fake GPU", (long)(totalGiB * (1L << 30)), (long)(reservedGiB * (1L << 30)), 0);
    public double? Profile(int batchSize)
    {
        Profiled.Add(batchSize);
        return gigabytes(batchSize);
    }
}

/// <summary>
/// AutoBatch's decisions against fits computed by hand (Ultralytics' autobatch.py: linear fit of memory against batch,
/// b = int((round(free·fraction) − intercept) / slope), failures cap it, 1…1024 or the default 16).
/// </summary>
public class AutoBatchTests
{
    [Fact]
    public void ExactLineIsSolvedForTheFractionOfFreeMemory()
    {
        // 8 GiB device, 1 GiB reserved: free 7; 0.6 × 7 = 4.2 → round 4; memory 0.5 + 0.3 b → b = int((4 − 0.5) / 0.3) = int(11.67) = 11.
        var probe = new FakeProbe(8, 1, b => 0.5 + 0.3 * b);
        var result = AutoBatch.Decide(probe, 640);
        Assert.Equal(11, result.Batch);
        Assert.Equal(new[] { 1, 2, 4, 8, 16 }, probe.Profiled);               // under 16 GiB: up to 16
        Assert.Equal("AutoBatch: Computing optimal batch size for imgsz=640 at 60.0% CUDA memory utilization.", result.Log[0]);
        Assert.Equal("AutoBatch: CUDA:0 (Fake GPU) 8.00G total, 1.00G reserved, 0.00G allocated, 7.00G free", result.Log[1]);
        // predicted (0.3·11 + 0.5 + 1) / 8 = 0.6: 4.80G, 60 %
        Assert.Equal("AutoBatch: Using batch-size 11 for CUDA:0 4.80G/8.00G (60%) ✅", result.Log[^1]);
        // Python's half-even formatting of the predicted share: (0.25·14 + 0.5 + 1) / 8 = 62.5 % prints as 62 %.
        var half = AutoBatch.Decide(new FakeProbe(8, 1, b => 0.5 + 0.25 * b), 640);
        Assert.Matches(@"Using batch-size 1[34] for CUDA:0 .*\(6[12]%\)", half.Log[^1]);
    }

    [Fact]
    public void FractionArgumentAndLargeDevicesProfileUpTo64()
    {
        // 80 GiB, nothing reserved; batch=0.3: round(24) = 24; memory 2 + 0.1 b → b = 220.
        var probe = new FakeProbe(80, 0, b => 2 + 0.1 * b);
        var result = AutoBatch.Decide(probe, 320, AutoBatch.Fraction(0.3));
        Assert.Equal(220, result.Batch);
        Assert.Equal(new[] { 1, 2, 4, 8, 16, 32, 64 }, probe.Profiled);
        Assert.StartsWith("AutoBatch: Computing optimal batch size for imgsz=320 at 30.0% CUDA", result.Log[0]);
        Assert.Equal(0.6, AutoBatch.Fraction(-1));
        Assert.Equal(0.6, AutoBatch.Fraction(0));
    }

    [Fact]
    public void LeastSquaresThroughNoisyPoints()
    {
        // Points (1,1.0) (2,1.3) (4,1.5) (8,2.6) (16,4.4) on an 8 GiB device, nothing reserved: round(4.8) = 5.
        // x̄ = 6.2, ȳ = 2.16; Sxy = 33.84, Sxx = 148.8 → slope 0.2274194…, intercept 2.16 − 6.2·slope = 0.75;
        // b = int((5 − 0.75) / 0.2274194) = int(18.69) = 18.
        double[] memory = { 1.0, 1.3, 1.5, 2.6, 4.4 };
        var probe = new FakeProbe(8, 0, b => memory[(int)Math.Log2(b)]);
        Assert.Equal(18, AutoBatch.Decide(probe, 640).Batch);
        var (slope, intercept) = AutoBatch.FitLine(new double[] { 1, 2, 4, 8, 16 }, memory);
        Assert.Equal(33.84 / 148.8, slope, 12);
        Assert.Equal(0.75, intercept, 12);
    }

    [Fact]
    public void AFailedSizeCapsTheChoiceAtTheSizeBeforeIt()
    {
        // The line says 11, but 8 failed (out of memory): 11 ≥ 8, so the size before it, 4.
        var probe = new FakeProbe(8, 1, b => b == 8 ? null : 0.5 + 0.3 * b);
        var result = AutoBatch.Decide(probe, 640);
        Assert.Equal(4, result.Batch);
        Assert.Contains("AutoBatch: batch   8: failed", result.Log);
    }

    [Fact]
    public void OutsideTheSafeRangeFallsBackToSixteen()
    {
        // Memory barely grows: int((4 − 0.5) / 0.0013) = int(2692.3) = 2692 > 1024.
        var huge = AutoBatch.Decide(new FakeProbe(8, 1, b => 0.5 + 0.0013 * b), 640);
        Assert.Equal(16, huge.Batch);
        Assert.Contains("AutoBatch: batch=2692 outside safe range, using default batch-size 16.", huge.Log);
        // More used than the fraction allows even at batch 0: int((4 − 5.1) / 0.25) = int(−4.4) = −4 (towards zero) < 1.
        var negative = AutoBatch.Decide(new FakeProbe(8, 1, b => 5.1 + 0.25 * b), 640);
        Assert.Equal(16, negative.Batch);
        Assert.Contains("AutoBatch: batch=-4 outside safe range, using default batch-size 16.", negative.Log);
    }

    [Fact]
    public void OddFitsAndErrorsFallBackToSixteen()
    {
        // Memory not increasing: only batch 1 is a point; numpy's one-point fit is slope y/2, intercept y/2:
        // (round(0.6 · 7) − 0.5) / 0.5 = 7.
        Assert.Equal(7, AutoBatch.Decide(new FakeProbe(8, 1, _ => 1.0), 640).Batch);
        // Every size failed: no point to fit (numpy's error), the default.
        var none = AutoBatch.Decide(new FakeProbe(8, 1, _ => null), 640);
        Assert.Equal(16, none.Batch);
        Assert.Equal("AutoBatch: error detected: expected non-empty vector for x,  using default batch-size 16.", none.Log[^1]);
        // More than the device holds is not a point either.
        Assert.Equal(16, AutoBatch.Decide(new FakeProbe(8, 1, _ => 9.0), 640).Batch);
        // The probe itself failing.
        var broken = AutoBatch.Decide(new ThrowingProbe(), 640);
        Assert.Equal(16, broken.Batch);
        Assert.Equal("AutoBatch: error detected: no driver,  using default batch-size 16.", broken.Log[^1]);
    }

    sealed class ThrowingProbe : IDeviceMemoryProbe
    {
        public string DeviceName => "CUDA:0";
        public DeviceMemory Memory() => throw new InvalidOperationException("no driver");
        public double? Profile(int batchSize) => throw new InvalidOperationException("unreachable");
    }

    [Fact]
    public void OnTheCpuItWarnsAndUsesSixteenWithoutProbing()
    {
        var lines = new List<string>();
        int probes = 0;
        IDeviceMemoryProbe Probe() { probes++; return new FakeProbe(8, 1, b => 0.5 + 0.25 * b); }
        using var parallel = new DataParallel();
        Assert.Equal(16, AutoBatch.Resolve(-1, 640, CPU, parallel, Probe, lines.Add));
        Assert.Equal(new[]
        {
            "AutoBatch: Computing optimal batch size for imgsz=640 at 60.0% CUDA memory utilization.",
            "AutoBatch: intended for CUDA devices, using default batch-size 16",
        }, lines);
        Assert.Equal(16, AutoBatch.Resolve(0.5, 640, CPU, parallel, Probe));
        Assert.Equal(8, AutoBatch.Resolve(8, 640, CPU, parallel, Probe));
        Assert.Equal(0, probes);
        var e = Assert.Throws<ArgumentsException>(() => AutoBatch.Resolve(16.5, 640, CPU, parallel, Probe));
        Assert.Contains("batch=16.5", e.Message);
    }
}
