using System.Diagnostics;
using Osprey.Benchmarks;
using Osprey.Config;
using Osprey.Data;
using Osprey.Models;
using Osprey.Tests.Data;
using Osprey.Tests.Models;
using Osprey.Training;
using static TorchSharp.torch;

namespace Osprey.Tests.Benchmarks;

public class TrainBenchmarkTests
{
    static string Coco8 => Path.Combine(DataTestFiles.SharedData, "coco8", "coco8.yaml");

    [Fact]
    public void RepeatedDatasetLinksEveryTrainImageAndLabelEnoughTimes()
    {
        string work = DataTestFiles.NewTempDir();
        var config = DatasetCatalog.Resolve(Coco8);
        var original = DetectionDataset.Load(config, DatasetSplit.Train);
        string yaml = TrainBenchmark.RepeatedDataset(config, work, original.Count * 2 + 1);

        var repeated = DetectionDataset.Load(yaml, DatasetSplit.Train);
        Assert.Equal(original.Count * 3, repeated.Count);                       // ⌈(2n + 1) / n⌉ copies
        Assert.Equal(original.Images.Sum(i => i.Classes.Length) * 3, repeated.Images.Sum(i => i.Classes.Length));
        Assert.Equal(config.Names, repeated.Names);
        Assert.Single(DetectionDataset.Load(yaml, DatasetSplit.Val).Images);
        Assert.All(Directory.EnumerateFiles(Path.Combine(work, "images", "train")), f => Assert.NotNull(new FileInfo(f).LinkTarget));
    }

    [Fact]
    public void TimesOnlyTheBatchesAfterWarmUpAndCleansUp()
    {
        string dir = TestModels.TempDir();
        string model = Path.Combine(dir, "tiny.yaml");
        File.WriteAllText(model, TestModels.TinyYaml());
        var args = ArgsParser.Parse(new[] { $"data={Coco8}", $"model={model}", "imgsz=64", "batch=2", "workers=1", "device=cpu" });
        int before = Directory.GetDirectories(Path.GetTempPath(), "osprey-bench-train-*").Length;
        var result = TrainBenchmark.Run(args, timedImages: 3);
        Assert.Equal(2, result.Batches);                                          // 3 images → 2 batches of 2
        Assert.Equal(4, result.Images);
        Assert.True(result.Seconds > 0);
        Assert.StartsWith("fp32", result.Precision);
        Assert.Equal(TestModels.Tiny(nc: 80).ParameterCount, result.Parameters);
        Assert.Equal(before, Directory.GetDirectories(Path.GetTempPath(), "osprey-bench-train-*").Length);
    }

    [Fact]
    public void ReferenceGetsTheRunsPrecisionLayoutAndCudnnFlags()
    {
        var gpu = new PrecisionChoice(new CastPolicy(ScalarType.BFloat16, ChannelsLast: true), "test");
        var arguments = TrainBenchmark.ReferenceArguments("ref.py", "n", 80, 640, 64, gpu, cuda: true, deterministic: true, steps: 30);
        Assert.Equal("ref.py --scale n --nc 80 --imgsz 640 --batch 64 --dtype bf16 --device cuda --steps 30 --warmup 3 " +
            "--channels-last --cudnn-benchmark --deterministic", string.Join(' ', arguments));
        var cpu = new PrecisionChoice(CastPolicy.Float32, "test");
        Assert.Equal("ref.py --scale s --nc 3 --imgsz 128 --batch 8 --dtype fp32 --device cpu --steps 4 --warmup 3",
            string.Join(' ', TrainBenchmark.ReferenceArguments("ref.py", "s", 3, 128, 8, cpu, cuda: false, deterministic: false, steps: 4)));
    }

    [Fact]
    public void ReferenceResultOrItsAbsenceIsReportedFromTheJsonLine()
    {
        string dir = DataTestFiles.NewTempDir();
        string ok = Path.Combine(dir, "ok.py"), missing = Path.Combine(dir, "missing.py");
        File.WriteAllText(ok, "print('warming up')\nprint('{\"img_per_s\": 1671.5, \"params\": 3157200, \"description\": \"torch 2.11\"}')\n");
        File.WriteAllText(missing, "import sys\nprint('{\"error\": \"python3 cannot import torch\"}')\nsys.exit(3)\n");
        var choice = new PrecisionChoice(CastPolicy.Float32, "test");

        var result = TrainBenchmark.RunReference(ok, "python3", "n", 80, 64, 2, choice, cuda: false, deterministic: false, steps: 1);
        Assert.Null(result.Error);
        Assert.Equal((1671.5, 3157200L, "torch 2.11"), (result.ImagesPerSecond, result.Parameters, result.Description));

        var absent = TrainBenchmark.RunReference(missing, "python3", "n", 80, 64, 2, choice, cuda: false, deterministic: false, steps: 1);
        Assert.Equal("python3 cannot import torch", absent.Error);
        var noPython = TrainBenchmark.RunReference(ok, Path.Combine(dir, "no-such-python"), "n", 80, 64, 2, choice, false, false, 1);
        Assert.NotNull(noPython.Error);
    }

    [Theory]
    [InlineData("n")]
    [InlineData("s")]
    public void ReferenceArchitectureHasOspreysParameterCount(string scale)
    {
        // bench/train_reference.py builds its modules against a torch double that only counts parameters.
        var start = new ProcessStartInfo("python3") { RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var a in new[] { Path.Combine(DataTestFiles.RepoRoot, "bench", "train_reference.py"), "--scale", scale, "--nc", "80", "--params-only" })
            start.ArgumentList.Add(a);
        start.Environment["PYTHONPATH"] = Path.Combine(DataTestFiles.RepoRoot, "test", "Osprey.Tests", "Training", "FakeTorch");
        using var process = Process.Start(start)!;
        string stdout = process.StandardOutput.ReadToEnd();
        process.WaitForExit();
        Assert.True(process.ExitCode == 0, process.StandardError.ReadToEnd());
        long reference = System.Text.Json.JsonDocument.Parse(stdout).RootElement.GetProperty("params").GetInt64();
        using var model = DetectionModel.FromYaml($"yolov8{scale}.yaml", 80);
        Assert.Equal(model.ParameterCount, reference);
    }
}
