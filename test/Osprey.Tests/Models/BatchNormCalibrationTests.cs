using Osprey.Models;
using TorchSharp;
using static TorchSharp.torch;

namespace Osprey.Tests.Models;

public class BatchNormCalibrationTests
{
    [Fact]
    public void KeepsEvalOutputsAndMakesTrainingModeAgreeOnTheCalibrationBatch()
    {
        using var model = TestModels.Tiny(nc: 3);
        TestModels.RandomiseBatchNorms(model, seed: 5);
        using var scope = NewDisposeScope();
        var images = rand(new long[] { 4, 3, 64, 64 }, generator: new Generator(11));
        model.eval();
        Tensor[] before;
        using (no_grad()) before = model.ForwardFeatures(images);
        // Without calibration, batch statistics make training mode a different function (this test could fail).
        // (On a copy: a training-mode forward also moves the running statistics.)
        using (var copy = TestModels.Tiny(nc: 3))
        {
            copy.load_state_dict(model.state_dict());
            copy.train();
            using (no_grad()) Assert.True((copy.ForwardFeatures(images)[0] - before[0]).abs().max().item<float>() > 0.1f);
        }

        int calibrated = BatchNormCalibration.Calibrate(model, new[] { images });
        Assert.Equal(model.modules().OfType<Osprey.Models.Blocks.Conv>().Count(), calibrated);

        model.eval();
        using (no_grad())
        {
            var after = model.ForwardFeatures(images);
            for (int i = 0; i < 3; i++)
                Assert.True(((after[i] - before[i]).abs() / (before[i].abs() + 1)).max().item<float>() < 1e-4f, $"eval level {i} changed");
        }
        model.train();
        using (no_grad())
        {
            // Train-mode BN normalises with this batch's statistics = the calibrated ones: same function.
            var trained = model.ForwardFeatures(images);
            for (int i = 0; i < 3; i++)
                Assert.True(((trained[i] - before[i]).abs() / (before[i].abs() + 1)).max().item<float>() < 1e-3f, $"train level {i} differs");
        }
    }
}
