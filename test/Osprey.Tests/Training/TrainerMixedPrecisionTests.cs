using Osprey.Config;
using Osprey.Data;
using Osprey.Models;
using Osprey.Tests.Models;
using Osprey.Training;

namespace Osprey.Tests.Training;

public class TrainerMixedPrecisionTests
{
    sealed record Outcome(string Precision, IReadOnlyDictionary<string, double> Losses, Dictionary<string, float[]> Weights, LossScalerState? Scaler);

    static Outcome Train(string dir, string data, string model, string name, params string[] extra)
    {
        string precision = "";
        var args = ArgsParser.Parse(new[] { $"data={data}", $"model={model}", "epochs=2", "imgsz=64", "batch=8", "nbs=8",
            "workers=2", "device=cpu", $"project={dir}", $"name={name}", "plots=False", "close_mosaic=0" }.Concat(extra).ToArray());
        var done = new Trainer(args, e => { if (e is TrainingStarted s) precision = s.Precision; }).Train();
        var rows = ResultsCsv.Read(Path.Combine(done.RunDirectory, "results.csv"));
        var weights = ModelFactory.Create(done.LastWeights).state_dict()
            .ToDictionary(kv => kv.Key, kv => Osprey.Runtime.HostCopy.Floats(kv.Value));
        var state = Checkpoint.ReadState(Path.Combine(done.RunDirectory, "weights", "last.ckpt"));
        return new Outcome(precision, rows[^1], weights, state.LossScaler);
    }

    static double RelativeDistance(Dictionary<string, float[]> a, Dictionary<string, float[]> b)
    {
        double difference = 0, norm = 0;
        foreach (var (key, values) in a)
            for (int i = 0; i < values.Length; i++)
            {
                difference += Math.Pow(values[i] - b[key][i], 2);
                norm += Math.Pow(b[key][i], 2);
            }
        return Math.Sqrt(difference / norm);
    }

    [Fact]
    public void Bf16AndFp16RunsOnTheCpuTrackTheFp32Run()
    {
        string dir = TestModels.TempDir();
        string data = ShapesDataset.EnsureGenerated(new ShapesOptions(ImageSize: 64, TrainImages: 24, ValImages: 8, Seed: 5), dir);
        string model = Path.Combine(dir, "tiny.yaml");
        File.WriteAllText(model, TestModels.TinyYaml());

        var fp32 = Train(dir, data, model, "fp32");                               // amp=True by default: off on the CPU
        var bf16 = Train(dir, data, model, "bf16", "amp_dtype=bf16");
        var fp16 = Train(dir, data, model, "fp16", "amp_dtype=fp16");

        Assert.StartsWith("fp32 (", fp32.Precision);
        Assert.StartsWith("bf16 (", bf16.Precision);
        Assert.StartsWith("fp16 (", fp16.Precision);
        Assert.Null(fp32.Scaler);
        Assert.Null(bf16.Scaler);
        // fp16: the scaler's state is checkpointed; 6 optimiser steps, each either grew the good-step count or halved
        // the scale, so scale = 2^16 · 2^-skipped and the count ≤ 6.
        Assert.NotNull(fp16.Scaler);
        double skipped = Math.Log2(65536.0 / fp16.Scaler!.Scale);
        Assert.Equal(Math.Round(skipped), skipped, 9);
        Assert.InRange(fp16.Scaler.GrowthTracker + skipped, 1, 6);

        // After 6 optimiser steps the second epoch's mean losses agree with fp32's to a few per cent (bf16 keeps 8
        // significant bits, fp16 11; the loss itself is computed in fp32 on fp32 maps), and the weights too.
        foreach (var run in new[] { bf16, fp16 })
        {
            foreach (string column in new[] { "train/box_loss", "train/cls_loss", "train/dfl_loss" })
                Assert.InRange(Math.Abs(run.Losses[column] / fp32.Losses[column] - 1), 0, 0.05);
            Assert.InRange(RelativeDistance(run.Weights, fp32.Weights), 1e-7, 0.01);
        }
    }
}
