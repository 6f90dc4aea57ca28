using Osprey.Config;
using Osprey.Data;
using Osprey.Distributed;
using Osprey.Evaluation;
using Osprey.Losses;
using Osprey.Models.Heads;
using Osprey.Tests.Models;
using Osprey.Training;
using TorchSharp;
using static TorchSharp.torch;

namespace Osprey.Tests.Training;

/// <summary>A YOLOv10 model through the trainer's set-up, its step and the validator (the loss comes from the head).</summary>
public class V10TrainingTests
{
    [Fact]
    public void TrainerStepAndValidatorUseTheEndToEndLossAndTopK()
    {
        string dir = TestModels.TempDir();
        try
        {
            string data = ShapesDataset.EnsureGenerated(new ShapesOptions(ImageSize: 64, TrainImages: 4, ValImages: 3, Seed: 3), dir);
            string yaml = Path.Combine(dir, "tiny-v10.yaml");
            File.WriteAllText(yaml, V10Models.TinyYaml(ShapesDataset.Names.Count));
            torch.manual_seed(1);
            var args = ArgsParser.Parse(new[] { $"data={data}", $"model={yaml}", "imgsz=64", "batch=2", "workers=1", "device=cpu",
                $"project={dir}", "plots=False" });
            using var run = TrainingRun.Setup(args, null, CPU, new DataParallel());
            Assert.IsType<V10Detect>(run.Model.Head);
            var loss = Assert.IsType<E2EDetectLoss>(run.Loss);
            Assert.Equal((10, 1), (loss.OneToMany.Options.TopK, loss.OneToOne.Options.TopK));
            Assert.Equal((7.5, 0.5, 1.5), (loss.Options.BoxGain, loss.Options.ClsGain, loss.Options.DflGain));

            using (var scope = NewDisposeScope())
            using (var epoch = run.TrainLoader.Epoch(0).GetEnumerator())
            {
                Assert.True(epoch.MoveNext());
                using var batch = epoch.Current;
                var step = run.Step.Run(batch, CPU, optimizerStep: true, new StepTimer(), 0);
                Assert.True(step.Finite && step.Box > 0 && step.Cls > 0 && step.Dfl > 0);
            }

            var result = DetectionValidator.Run(run.EmaModel, run.ValLoader, CPU, loss: run.Loss, collectPredictions: true);
            // The reference: per validation batch, the eval-mode maps, the v8 loss with top-k 10 on the first three plus top-k
            // 1 on the last three; averaged over the batches. The predictions: the head's top-k rows above conf 0.001.
            var sums = new double[3];
            int batches = 0, rows = 0;
            run.EmaModel.eval();
            using (var scope = NewDisposeScope())
            using (no_grad())
            {
                var options = new DetectionLossOptions { NumClasses = ShapesDataset.Names.Count, Strides = run.EmaModel.Strides.ToArray() };
                foreach (var batch in run.ValLoader.Epoch(0))
                {
                    using (batch)
                    {
                        var maps = run.EmaModel.ForwardFeatures(batch.ImagesAsFloat(CPU));
                        var targets = new DetectionTargets(batch.BatchIndex, batch.Classes, batch.Boxes);
                        using var many = new DetectionLoss(options).Compute(maps.Take(3).ToArray(), targets);
                        using var one = new DetectionLoss(options with { TopK = 1 }).Compute(maps.Skip(3).ToArray(), targets);
                        var items = (many.Items + one.Items).data<float>().ToArray();
                        for (int j = 0; j < 3; j++) sums[j] += items[j];
                        batches++;
                        var top = run.EmaModel.Predict(batch.ImagesAsFloat(CPU));                 // (b, k, 6)
                        Assert.Equal(6, top.shape[2]);
                        rows += (int)top.select(2, 4).gt(0.001f).sum().item<long>();
                    }
                }
            }
            Assert.Equal(1, batches);                                                            // 3 images, val batch 2·2 = 4
            Assert.Equal(sums.Select(s => s / batches), result.Losses!, new ToleranceComparer(1e-5));
            Assert.Equal(rows, result.Predictions.Count);
            Assert.Equal(3, result.Images);
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    private sealed class ToleranceComparer(double tolerance) : IEqualityComparer<double>
    {
        public bool Equals(double x, double y) => Math.Abs(x - y) <= tolerance * Math.Max(1, Math.Abs(x));

        public int GetHashCode(double obj) => 0;
    }
}
