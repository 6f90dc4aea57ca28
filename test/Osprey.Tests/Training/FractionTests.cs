using Osprey.Config;
using Osprey.Data;
using Osprey.Tests.Models;
using Osprey.Training;

namespace Osprey.Tests.Training;

/// <summary><c>fraction=</c>: the run trains on the first round(n · fraction) training images; validation keeps them all.</summary>
public class FractionTests
{
    [Fact]
    public void TrainingUsesTheFractionOfTheTrainingSetAndTheWholeValidationSet()
    {
        string dir = TestModels.TempDir();
        string data = ShapesDataset.EnsureGenerated(new ShapesOptions(ImageSize: 64, TrainImages: 24, ValImages: 8, Seed: 3), dir);
        var events = new List<TrainingEvent>();
        var done = new Trainer(ArgsParser.Parse(new[] { $"data={data}", $"model={DistillationTests.TinyYaml(dir, "t", 80)}", "epochs=1",
            "imgsz=64", "batch=4", "workers=1", "device=cpu", $"project={dir}", "plots=False", "fraction=0.25" }), events.Add).Train();
        var started = events.OfType<TrainingStarted>().Single();
        Assert.Equal(6, started.Train.Images);      // round(24 · 0.25)
        Assert.Equal(8, started.Val.Images);
        Assert.Equal(2, events.OfType<BatchFinished>().Count()); // 6 images at batch 4: two batches
        Assert.Contains("fraction: 0.25", File.ReadAllText(Path.Combine(done.RunDirectory, "args.yaml")));

        var bad = Assert.Throws<ArgumentsException>(() => new Trainer(ArgsParser.Parse(new[] { $"data={data}", "fraction=1.5", "device=cpu" })).Train());
        Assert.Contains("fraction=1.5", bad.Message);
    }
}
