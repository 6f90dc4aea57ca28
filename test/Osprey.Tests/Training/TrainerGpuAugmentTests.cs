using Osprey.Config;
using Osprey.Data;
using Osprey.Tests.Models;
using Osprey.Training;
using Xunit.Abstractions;

namespace Osprey.Tests.Training;

/// <summary><c>gpu_augment=True</c> in a real (short) training run on the CPU device.</summary>
public class TrainerGpuAugmentTests(ITestOutputHelper output)
{
    static double[] EpochLosses(string[] args, int stopAfter = int.MaxValue)
    {
        var losses = new List<double>();
        using var cancel = new CancellationTokenSource();
        try
        {
            new Trainer(ArgsParser.Parse(args), e =>
            {
                if (e is not EpochFinished f) return;
                losses.Add(f.Result.TrainLosses.Sum());
                if (losses.Count >= stopAfter) cancel.Cancel();
            }).Train(cancel.Token);
        }
        catch (OperationCanceledException) when (cancel.IsCancellationRequested)
        {
            // stopped after the epochs wanted
        }
        return losses.ToArray();
    }

    [Fact]
    public void TrainsWithAFiniteDecreasingLossCloseToThePixelPipelinesRun()
    {
        string dir = TestModels.TempDir();
        string data = ShapesDataset.EnsureGenerated(new ShapesOptions(ImageSize: 64, TrainImages: 24, ValImages: 2, Seed: 3), dir);
        string model = Path.Combine(dir, "tiny.yaml");
        File.WriteAllText(model, TestModels.TinyYaml());
        string[] common = [$"data={data}", $"model={model}", "epochs=3", "imgsz=64", "batch=8", "workers=2", "device=cpu",
            $"project={dir}", "warmup_epochs=0.5", "close_mosaic=0", "lr0=0.02", "plots=False", "val=False"];

        var device = EpochLosses([.. common, "name=device", "gpu_augment=True"]);
        var pixels = EpochLosses([.. common, "name=pixels"], stopAfter: 1);
        output.WriteLine($"gpu_augment=True:  {string.Join(", ", device.Select(l => l.ToString("0.0000")))}");
        output.WriteLine($"gpu_augment=False: {string.Join(", ", pixels.Select(l => l.ToString("0.0000")))}");

        Assert.Equal(3, device.Length);
        Assert.All(device, l => Assert.True(double.IsFinite(l)));
        Assert.True(device[^1] < 0.9 * device[0], $"loss did not decrease: {device[0]} → {device[^1]}");
        // same labels, images within interpolation of each other: the first epoch's loss nearly that of the pixel pipeline
        Assert.True(Math.Abs(device[0] - pixels[0]) <= 0.01 * pixels[0], $"epoch 1: {device[0]} against {pixels[0]}");
        Assert.Contains("gpu_augment: true", File.ReadAllText(Path.Combine(dir, "device", "args.yaml")), StringComparison.OrdinalIgnoreCase);
    }

    [Fact]
    public void MixupIsRejectedWithTheArgumentsNamed()
    {
        var e = Assert.Throws<ArgumentsException>(() => TrainingSetup.RejectUnsupported(ArgsParser.Parse(["data=shapes", "gpu_augment=True", "mixup=0.1"])));
        Assert.Contains("mixup=0.1", e.Message);
        Assert.Contains("gpu_augment=True", e.Message);
        TrainingSetup.RejectUnsupported(ArgsParser.Parse(["data=shapes", "gpu_augment=True"]));
    }
}
