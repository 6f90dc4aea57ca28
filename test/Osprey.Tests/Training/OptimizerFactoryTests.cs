using Osprey.Config;
using Osprey.Training;
using TorchSharp;
using static TorchSharp.torch;

namespace Osprey.Tests.Training;

public class OptimizerFactoryTests
{
    static nn.Module TinyModel() => nn.Sequential(
        ("conv", nn.Conv2d(3, 4, 3, bias: false)), ("bn", nn.BatchNorm2d(4)), ("head", nn.Conv2d(4, 2, 1)));

    // The optimiser over the model's flat layout, as the trainer makes it.
    static TrainingOptimizer Make(nn.Module model, OptimizerChoice name, double lr0, double momentum, double weightDecay, double warmupBiasLr,
        int nc, long iterations, int batch, int accumulate, int nominalBatch) =>
        TrainingOptimizer.Create(model, name, lr0, momentum, weightDecay, warmupBiasLr, nc, iterations, batch, accumulate, nominalBatch,
            FlatParameters.For(model));

    [Fact]
    public void SplitsBiasesWeightsAndBatchNormWeights()
    {
        var groups = ParameterGroups.Of(TinyModel());
        Assert.Equal(2, groups.Biases.Count);      // bn.bias, head.bias
        Assert.Equal(2, groups.Weights.Count);     // conv.weight, head.weight
        Assert.Single(groups.NormWeights);         // bn.weight
        Assert.Equal(new long[] { 4, 3, 3, 3 }, groups.Weights[0].shape);
    }

    [Fact]
    public void AutoPicksAdamWForShortRunsAndSgdForLongOnes()
    {
        var shortRun = Make(TinyModel(), OptimizerChoice.Auto, 0.01, 0.937, 0.0005, 0.1, nc: 80,
            iterations: 10000, batch: 16, accumulate: 4, nominalBatch: 64);
        Assert.Equal("AdamW", shortRun.Name);
        Assert.Equal(0.000119, shortRun.LearningRate); // round(0.002·5/84, 6)
        Assert.Equal(0.9, shortRun.Momentum);
        Assert.Equal(0.0, shortRun.WarmupBiasLr);
        var longRun = Make(TinyModel(), OptimizerChoice.Auto, 0.01, 0.937, 0.0005, 0.1, nc: 80,
            iterations: 10001, batch: 16, accumulate: 4, nominalBatch: 64);
        Assert.Equal(("SGD", 0.01, 0.9), (longRun.Name, longRun.LearningRate, longRun.Momentum));
    }

    [Fact]
    public void WeightDecayScalesWithBatchTimesAccumulate()
    {
        var o = Make(TinyModel(), OptimizerChoice.SGD, 0.01, 0.937, 0.0005, 0.1, 80, 1, batch: 8, accumulate: 8, nominalBatch: 64);
        Assert.Equal(0.0005, o.WeightDecay, 12);
        o = Make(TinyModel(), OptimizerChoice.SGD, 0.01, 0.937, 0.0005, 0.1, 80, 1, batch: 128, accumulate: 1, nominalBatch: 64);
        Assert.Equal(0.001, o.WeightDecay, 12);
    }

    [Fact]
    public void SgdStepIsNesterovWithDecayOnlyOnWeights()
    {
        using var scope = NewDisposeScope();
        var model = TinyModel();
        var o = Make(model, OptimizerChoice.SGD, 0.1, 0.9, 0.01, 0.0, 80, 1, batch: 64, accumulate: 1, nominalBatch: 64);
        var weight = o.Groups.Weights[1]; // head.weight
        var bias = o.Groups.Biases[1];    // head.bias
        using (no_grad()) { weight.fill_(1.0f); bias.fill_(1.0f); }
        weight.grad!.fill_(0.5f);                                          // the gradients are views of the flat buffers
        bias.grad!.fill_(0.5f);
        o.Optimizer.Step();
        // first step: buf = d_p; nesterov: update = d_p + m·buf = 1.9·d_p
        // weight: d_p = 0.5 + 0.01·1 = 0.51 → 1 − 0.1·1.9·0.51 = 0.9031; bias: d_p = 0.5 → 1 − 0.1·1.9·0.5 = 0.905
        Assert.Equal(0.9031f, weight[0, 0, 0, 0].item<float>(), 5);
        Assert.Equal(0.905f, bias[0].item<float>(), 5);
    }

    [Fact]
    public void ApplySetsGroupLearningRatesAndSgdMomentum()
    {
        var o = Make(TinyModel(), OptimizerChoice.SGD, 0.01, 0.937, 0.0005, 0.1, 80, 1, 16, 4, 64);
        o.Apply(new ScheduleValues(new[] { 0.05, 0.002, 0.003 }, 0.85, 2));
        Assert.Equal(new[] { 0.05, 0.002, 0.003 }, o.GroupLearningRates);
        Assert.All(o.Optimizer.Groups, g => Assert.Equal(0.85, g.Momentum));
    }
}
