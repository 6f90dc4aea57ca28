using Osprey.Distributed;
using Osprey.Training;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Osprey.Tests.Training;

public class LossScalerTests
{
    static Parameter WithGrad(float[] values)
    {
        var parameter = new Parameter(zeros(values.Length));
        parameter.grad = tensor(values);
        return parameter;
    }

    [Fact]
    public void StartsAtTwoToTheSixteenAndScalesTheLoss()
    {
        var scaler = new LossScaler();
        Assert.Equal(65536.0, scaler.Scale);
        using var loss = tensor(0.75f);
        using var scaled = scaler.ScaleLoss(loss);
        Assert.Equal(0.75f * 65536f, scaled.item<float>());
    }

    [Fact]
    public void UnscalesGradientsInPlaceAndFindsNoInfWhenFinite()
    {
        var scaler = new LossScaler();
        using var p = WithGrad(new[] { 65536f, -131072f, 3f });
        Assert.False(scaler.UnscaleAndCheck(new[] { p.grad! }, CPU));
        Assert.Equal(new[] { 1f, -2f, 3f / 65536f }, p.grad!.data<float>().ToArray());
    }

    [Theory]
    [InlineData(float.PositiveInfinity)]
    [InlineData(float.NegativeInfinity)]
    [InlineData(float.NaN)]
    public void InfOrNanAnywhereIsFoundAndBacksOff(float bad)
    {
        var scaler = new LossScaler();
        using var good = WithGrad(new[] { 1f, 2f });
        using var broken = WithGrad(new[] { 0f, bad, 5f });
        Assert.True(scaler.UnscaleAndCheck(new[] { good.grad!, broken.grad! }, CPU));
        scaler.Update(foundInf: true);
        Assert.Equal(32768.0, scaler.Scale);
        Assert.Equal(0, scaler.GrowthTracker);
        Assert.Equal(1, scaler.SkippedSteps);
    }

    [Fact]
    public void GrowsByTwoAfterTheGrowthIntervalOfGoodStepsAndAnInfResetsTheCount()
    {
        var scaler = new LossScaler();
        for (int i = 0; i < 1999; i++) scaler.Update(foundInf: false);
        Assert.Equal(65536.0, scaler.Scale);
        Assert.Equal(1999, scaler.GrowthTracker);
        scaler.Update(foundInf: false);                                      // the 2000th good step
        Assert.Equal(131072.0, scaler.Scale);
        Assert.Equal(0, scaler.GrowthTracker);

        for (int i = 0; i < 1500; i++) scaler.Update(foundInf: false);
        scaler.Update(foundInf: true);                                       // back off, count from zero
        Assert.Equal(65536.0, scaler.Scale);
        for (int i = 0; i < 1999; i++) scaler.Update(foundInf: false);
        Assert.Equal(65536.0, scaler.Scale);
        scaler.Update(foundInf: false);
        Assert.Equal(131072.0, scaler.Scale);
    }

    [Fact]
    public void StateRoundTrips()
    {
        var scaler = new LossScaler(growthInterval: 3);
        scaler.Update(true);
        scaler.Update(false);
        var copy = new LossScaler(growthInterval: 3);
        copy.Restore(scaler.State);
        Assert.Equal(new LossScalerState(32768.0, 1), copy.State);
        copy.Update(false);
        copy.Update(false);
        Assert.Equal(65536.0, copy.Scale);
    }

    // The trainer's optimiser step: w starts at 0, SGD lr 0.1 without momentum or decay, so w = −0.1·g_used, where
    // g_used is the gradient after unscaling and clipping at 10.
    static (float[] Weight, long EmaUpdates, LossScaler Scaler) TrainerStep(float[] scaledGradient)
    {
        var model = torch.nn.Linear(2, 1, hasBias: false);
        using (no_grad()) model.weight!.zero_();
        var ema = new ModelEma(torch.nn.Linear(2, 1, hasBias: false));
        using var flat = FlatParameters.Create(new[] { new[] { model.weight! } }, null);
        using var optimizer = new GroupedOptimizer(OptimizerKind.Sgd, new[] { new OptimizerGroup(new[] { model.weight! }, 0.1, 0.0, 0.0) }, flat);
        model.weight!.grad!.copy_(tensor(scaledGradient).view(1, 2));
        var scaler = new LossScaler();
        new WeightUpdate(model, optimizer, ema, scaler).Apply();
        Assert.Equal(new[] { 0f, 0f }, model.weight!.grad!.data<float>().ToArray()); // zeroed either way
        return (model.weight!.data<float>().ToArray(), ema.Updates, scaler);
    }

    [Fact]
    public void TheTrainerUnscalesBeforeClipping()
    {
        // True gradient (3, 4): norm 5 < 10, untouched by the clip. Clipping the scaled gradient first would have
        // shrunk it to norm 10 / 65536.
        var (weight, _, scaler) = TrainerStep(new[] { 3f * 65536, 4f * 65536 });
        Assert.Equal(-0.3f, weight[0], 6);
        Assert.Equal(-0.4f, weight[1], 6);
        Assert.Equal(1, scaler.GrowthTracker);

        // True gradient (30, 40): norm 50, clipped to 10 → (6, 8).
        (weight, _, _) = TrainerStep(new[] { 30f * 65536, 40f * 65536 });
        Assert.Equal(-0.6f, weight[0], 5);
        Assert.Equal(-0.8f, weight[1], 5);
    }

    [Fact]
    public void TheTrainerSkipsTheStepOnInfButStillUpdatesTheEma()
    {
        var (weight, emaUpdates, scaler) = TrainerStep(new[] { float.PositiveInfinity, 1f });
        Assert.Equal(new[] { 0f, 0f }, weight);
        Assert.Equal(32768.0, scaler.Scale);
        Assert.Equal(1, emaUpdates);                                           // as Ultralytics: EMA after every step call
    }
}
