using Osprey.Training;

namespace Osprey.Tests.Training;

public class LearningRateScheduleTests
{
    static LearningRateSchedule Make(bool cosine, int batch = 16, double warmupEpochs = 3) =>
        new(lr0: 0.01, lrf: 0.01, epochs: 100, cosine: cosine, warmupEpochs: warmupEpochs, warmupBiasLr: 0.1,
            warmupMomentum: 0.8, momentum: 0.937, nominalBatch: 64, batch: batch);

    [Theory]
    [InlineData(false, 0, 1.0)]
    [InlineData(false, 50, 0.505)]      // (1 − 0.5)·0.99 + 0.01
    [InlineData(false, 100, 0.01)]
    [InlineData(true, 25, 0.8550178)]   // (1 − cos(π/4))/2 = 0.1464466; ·(0.01 − 1) + 1
    [InlineData(true, 50, 0.505)]
    [InlineData(true, 100, 0.01)]
    public void EpochFactorMatchesUltralytics(bool cosine, int epoch, double expected) =>
        Assert.Equal(expected, Make(cosine).Factor(epoch), 6);

    [Fact]
    public void WarmupIsAtLeastHundredIterations()
    {
        Assert.Equal(100, Make(false).WarmupIterations(10));   // max(round(3·10), 100)
        Assert.Equal(150, Make(false).WarmupIterations(50));   // 3·50
        Assert.Equal(-1, Make(false, warmupEpochs: 0).WarmupIterations(50));
    }

    [Fact]
    public void HalfwayThroughWarmupInterpolatesLinearly()
    {
        // nb = 10 → nw = 100; iteration 50 → t = 0.5
        var v = Make(false).At(epoch: 5, iteration: 50, batchesPerEpoch: 10);
        double lr = 0.01 * (0.95 * 0.99 + 0.01); // lr0·lf(5) = 0.009505
        Assert.Equal(0.1 + 0.5 * (lr - 0.1), v.LearningRates[0], 9); // bias: from warmup_bias_lr down
        Assert.Equal(0.5 * lr, v.LearningRates[1], 9);               // others: from 0 up
        Assert.Equal(0.5 * lr, v.LearningRates[2], 9);
        Assert.Equal(0.8685, v.Momentum, 9);                          // 0.8 + 0.5·0.137
        Assert.Equal(2, v.Accumulate);                                // round(2.5) = 2 (half to even, as numpy)
    }

    [Fact]
    public void AfterWarmupEveryGroupFollowsTheEpochFactor()
    {
        var s = Make(false);
        var end = s.At(epoch: 0, iteration: 100, batchesPerEpoch: 10);
        Assert.Equal(0.01, end.LearningRates[0], 12);
        var after = s.At(epoch: 20, iteration: 201, batchesPerEpoch: 10);
        Assert.All(after.LearningRates, lr => Assert.Equal(0.01 * (0.8 * 0.99 + 0.01), lr, 12));
        Assert.Equal(0.937, after.Momentum);
        Assert.Equal(4, after.Accumulate); // nbs 64 / batch 16
        Assert.Equal(1, Make(false, batch: 128).Accumulate);
        Assert.Equal(3, Make(false, batch: 24).Accumulate); // round(2.667)
        Assert.Equal(2, Make(false, batch: 32).Accumulate);
    }
}
