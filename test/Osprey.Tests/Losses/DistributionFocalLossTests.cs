using Osprey.Losses;
using Osprey.Models;
using static TorchSharp.torch;

namespace Osprey.Tests.Losses;

public class DistributionFocalLossTests
{
    /// <summary>Logits whose softmax is wl at ⌊t⌋ and wr at ⌊t⌋+1 (the DFL two-bin target), ~0 elsewhere.</summary>
    private static Tensor TwoBinLogits(Tensor distances, int regMax)
    {
        var t = distances.view(-1);                                       // (S)
        var left = t.floor().to_type(ScalarType.Int64);
        var probabilities = full(new long[] { t.shape[0], regMax }, 1e-12f);
        var weightRight = t - left.to_type(ScalarType.Float32);
        probabilities.scatter_(1, left.unsqueeze(1), (1 - weightRight).unsqueeze(1));
        probabilities.scatter_(1, (left + 1).unsqueeze(1), weightRight.unsqueeze(1));
        return probabilities.log();                                       // (S, regMax)
    }

    [Fact]
    public void EncodeTwoBinTargetDecodeRoundTrips()
    {
        using var scope = NewDisposeScope();
        // Anchor (5.5, 5.5), box (2.3, 1.7, 9.9, 12.05) → ltrb (3.2, 3.8, 4.4, 6.55), all < 15.
        var anchor = tensor(new float[] { 5.5f, 5.5f }).view(1, 2);
        var box = tensor(new float[] { 2.3f, 1.7f, 9.9f, 12.05f }).view(1, 1, 4);
        var distances = Anchors.BoxToDist(anchor, box, 15);                // (1, 1, 4)
        Assert.Equal(new[] { 3.2f, 3.8f, 4.4f, 6.55f }, distances.data<float>().ToArray().Select(v => MathF.Round(v, 4)));
        var logits = TwoBinLogits(distances, 16).view(1, 1, 64);          // (b, A, 4·16)
        var decoded = DistributionFocalLoss.Expectation(logits, 16);       // (1, 1, 4)
        var roundTrip = Anchors.DistToBox(decoded, anchor, xywh: false);
        var expected = box.data<float>().ToArray();
        var actual = roundTrip.data<float>().ToArray();
        for (int i = 0; i < 4; i++) Assert.Equal(expected[i], actual[i], 4);
    }

    [Fact]
    public void HandWorkedCrossEntropyInterpolation()
    {
        using var scope = NewDisposeScope();
        // regMax 4, logits (0, 1, 2, 0) on every side, target 1.4: left bin 1 (weight 0.6), right bin 2 (weight 0.4).
        // logsumexp = ln(1 + e + e² + 1) = ln 12.107338 = 2.493812; CE(1) = 1.493812, CE(2) = 0.493812.
        // loss = 0.6·1.493812 + 0.4·0.493812 = 1.093812 (same on all 4 sides → mean 1.093812).
        var logits = tensor(new float[] { 0, 1, 2, 0 }).repeat(4, 1);     // (4, 4) = (P·4, regMax)
        var loss = DistributionFocalLoss.Loss(logits, full(1, 4, 1.4f), regMax: 4); // (1, 1)
        Assert.Equal(new long[] { 1, 1 }, loss.shape);
        Assert.Equal(1.093812f, loss.item<float>(), 5);

        // Target 3.5 is clamped to 2.99: bins 2 (0.01) and 3 (0.99): 0.01·0.493812 + 0.99·2.493812 = 2.473812.
        Assert.Equal(2.473812f, DistributionFocalLoss.Loss(logits, full(1, 4, 3.5f), regMax: 4).item<float>(), 5);
    }

    [Fact]
    public void PeakedAtTargetBeatsPeakedElsewhere()
    {
        using var scope = NewDisposeScope();
        var target = tensor(new float[] { 3.2f, 3.8f, 4.4f, 6.55f }).view(1, 4);
        var right = TwoBinLogits(target, 16);                              // (4, 16)
        var wrong = TwoBinLogits(target + 5, 16);
        var lossRight = DistributionFocalLoss.Loss(right, target, 16).item<float>();
        var lossWrong = DistributionFocalLoss.Loss(wrong, target, 16).item<float>();
        Assert.True(lossRight < lossWrong, $"{lossRight} vs {lossWrong}");
        // At its own target, the two-bin distribution's loss is the entropy of (wl, wr), mean over sides:
        // H(0.8,0.2) = 0.500402, H(0.2,0.8) = 0.500402, H(0.6,0.4) = 0.673012, H(0.45,0.55) = 0.688139 → 0.590489.
        Assert.Equal(0.590489f, lossRight, 4);
    }
}
