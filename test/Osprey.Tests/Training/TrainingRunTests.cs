using Osprey.Config;
using Osprey.Data;
using Osprey.Distributed;
using Osprey.Losses;
using Osprey.Models;
using Osprey.Tests.Models;
using Osprey.Training;
using TorchSharp;
using static TorchSharp.torch;

namespace Osprey.Tests.Training;

/// <summary>The trainer's set-up (<see cref="TrainingRun"/>) and its step (<see cref="TrainStep"/>) on their own.</summary>
public class TrainingRunTests
{
    static (string Dir, string Data, string Yaml) Files()
    {
        string dir = TestModels.TempDir();
        string data = ShapesDataset.EnsureGenerated(new ShapesOptions(ImageSize: 64, TrainImages: 4, ValImages: 2, Seed: 3), dir);
        string yaml = Path.Combine(dir, "tiny.yaml");
        File.WriteAllText(yaml, TestModels.TinyYaml());
        return (dir, data, yaml);
    }

    [Fact]
    public void PretrainedWeightsAreLoadedWhereNameAndShapeMatch()
    {
        var (dir, data, yaml) = Files();
        torch.manual_seed(7);
        using var source = TestModels.Tiny(ShapesDataset.Names.Count + 1);   // one class more: the class outputs do not fit
        TestModels.RandomiseBatchNorms(source, seed: 2);
        string weights = Path.Combine(dir, "source.safetensors");
        ModelWeights.Save(source, weights);
        var args = ArgsParser.Parse(new[] { $"data={data}", $"model={yaml}", $"pretrained={weights}", "imgsz=64", "batch=2",
            "workers=1", "device=cpu", $"project={dir}", "plots=False" });
        using var run = TrainingRun.Setup(args, null, CPU, new DataParallel());

        var file = source.state_dict();
        int transferred = 0, kept = 0;
        foreach (var (key, value) in run.Model.state_dict())
        {
            if (file.TryGetValue(key, out var loaded) && loaded.shape.SequenceEqual(value.shape))
            {
                Assert.True(value.SameAs(loaded), $"{key} was not loaded");
                transferred++;
            }
            else kept++;
        }
        Assert.True(kept > 0 && transferred > 10 * kept, $"{transferred} transferred, {kept} kept");
        Assert.Contains($"Transferred {transferred}/{transferred + kept} items from pretrained weights", run.SetupLog);
    }

    /// <summary>fp16: an overflow in an epoch's last micro-steps (after its last optimiser step) does not skip the next
    /// epoch's first optimiser step, as in the trainer before the redesign and in a run resumed at the epoch boundary.</summary>
    [Fact]
    public void AnOverflowInAnEpochsTailDoesNotSkipTheNextEpochsFirstStep()
    {
        using var model = TestModels.Tiny(2);
        model.train();
        var parallel = new DataParallel();
        using var flat = FlatParameters.For(model);
        using var replica = parallel.Wrap(model, flat, syncBatchNorm: false);
        using var emaModel = new DetectionModel(model.Config);
        emaModel.load_state_dict(model.state_dict());
        using var ema = new ModelEma(emaModel);
        ema.UseFlatLayout(model, flat);
        var loss = new DetectionLoss(new DetectionLossOptions { NumClasses = 2, RegMax = model.RegMax, Strides = model.Strides.ToArray() });
        var optimizer = TrainingOptimizer.Create(model, OptimizerChoice.SGD, 0.01, 0.9, 0, 0, 2, 10, 2, 2, 4, flat);
        var scaler = new LossScaler();
        var step = new TrainStep(model, replica, loss, new WeightUpdate(model, optimizer.Optimizer, ema, scaler), scaler);
        var targets = new DetectionTargets(tensor(new float[] { 0 }), tensor(new float[] { 1 }), tensor(new float[,] { { .5f, .5f, .3f, .3f } }));

        Assert.False(step.Run(full(new long[] { 1, 3, 64, 64 }, float.NaN), targets, false, new StepTimer(), "tail").Finite);
        step.BeginEpoch();
        Assert.True(step.Run(rand(1, 3, 64, 64), targets, true, new StepTimer(), "first").Finite);
        Assert.Equal((0L, 1L), (scaler.SkippedSteps, optimizer.Optimizer.Steps));

        // within an epoch the overflow still skips the optimiser step it belongs to (GradScaler's outcome)
        Assert.False(step.Run(full(new long[] { 1, 3, 64, 64 }, float.NaN), targets, false, new StepTimer(), "overflow").Finite);
        Assert.True(step.Run(rand(1, 3, 64, 64), targets, true, new StepTimer(), "skipped").Finite);
        Assert.Equal((1L, 1L), (scaler.SkippedSteps, optimizer.Optimizer.Steps));
    }
}
