using System.Globalization;
using System.Text.Json.Nodes;
using Osprey.Config;
using Osprey.Evaluation;
using Osprey.Data;
using Osprey.Models;
using Osprey.Tests.Data;
using Osprey.Tests.Models;
using Osprey.Training;

namespace Osprey.Tests.Training;

public class TrainerTests
{
    static string TinyModelYaml(string dir, string scale = "t")
    {
        string path = Path.Combine(dir, $"tiny-{scale}.yaml");
        File.WriteAllText(path, TestModels.TinyYaml().Replace("scale: t", $"scale: {scale}")
            .Replace("t: [0.33, 0.0625, 1024]", "t: [0.33, 0.0625, 1024]\n  s8: [0.33, 0.125, 1024]"));
        return path;
    }

    static OspreyArgs Args(params string[] tokens) => ArgsParser.Parse(tokens);

    static Dictionary<string, float[]> Weights(string path)
    {
        var model = ModelFactory.Create(path);
        return model.state_dict().ToDictionary(kv => kv.Key, kv => Osprey.Runtime.HostCopy.Floats(kv.Value));
    }

    [Fact]
    public void TwoEpochsStraightEqualOneEpochThenResume()
    {
        string dir = TestModels.TempDir();
        string data = ShapesDataset.EnsureGenerated(new ShapesOptions(ImageSize: 64, TrainImages: 24, ValImages: 8, Seed: 3), dir);
        string model = TinyModelYaml(dir);
        string[] common = { $"data={data}", $"model={model}", "epochs=2", "imgsz=64", "batch=8", "workers=2", "device=cpu",
            $"project={dir}", "warmup_epochs=0.1", "close_mosaic=1" };

        var straight = new Trainer(Args(common.Append("name=straight").ToArray())).Train();

        using var cancel = new CancellationTokenSource();
        var interrupted = new Trainer(Args(common.Append("name=resumed").ToArray()),
            e => { if (e is EpochFinished { Result.Epoch: 1 }) cancel.Cancel(); });
        Assert.Throws<OperationCanceledException>(() => interrupted.Train(cancel.Token));
        string checkpoint = Path.Combine(dir, "resumed", "weights", "last.ckpt");
        Assert.Equal(1, Checkpoint.ReadState(checkpoint).Epoch);

        var resumed = new Trainer(Args($"resume={checkpoint}", "workers=2")).Train();
        Assert.Equal(Path.Combine(dir, "resumed"), resumed.RunDirectory);
        Assert.Equal(2, resumed.EpochsRun);

        var a = Weights(straight.LastWeights);
        var b = Weights(resumed.LastWeights);
        Assert.Equal(a.Keys, b.Keys);
        foreach (string key in a.Keys) Assert.True(a[key].AsSpan().SequenceEqual(b[key]), $"{key} differs after resume");
        var rowsA = ResultsCsv.Read(Path.Combine(dir, "straight", "results.csv"));
        var rowsB = ResultsCsv.Read(Path.Combine(dir, "resumed", "results.csv"));
        Assert.Equal(2, rowsB.Count);
        foreach (string column in new[] { "train/box_loss", "train/cls_loss", "train/dfl_loss", "metrics/mAP50(B)", "lr/pg0" })
            Assert.Equal(rowsA[1][column], rowsB[1][column]);
    }

    [Fact]
    public void RealDataRunOnCoco8WritesEveryOutput()
    {
        string dir = TestModels.TempDir();
        string data = Path.Combine(DataTestFiles.SharedData, "coco8", "coco8.yaml");
        var done = new Trainer(Args($"data={data}", "model=yolov8n.yaml", "epochs=3", "imgsz=320", "batch=4", "workers=2",
            "device=cpu", $"project={dir}", "save_json=True")).Train();

        string run = Path.Combine(dir, "train");
        Assert.Equal(run, done.RunDirectory);
        Assert.Equal(3, done.EpochsRun);
        foreach (string file in new[] { "args.yaml", "results.csv", "predictions.json", "weights/last.safetensors",
                     "weights/best.safetensors", "weights/last.ckpt", "weights/best.yaml", "results.png", "PR_curve.png",
                     "confusion_matrix.png", "confusion_matrix_normalized.png", "train_batch0.png", "train_batch2.png",
                     "val_batch0_labels.png", "val_batch0_pred.png" })
            Assert.True(File.Exists(Path.Combine(run, file)), $"{file} missing");
        Assert.NotEmpty(Directory.GetFiles(run, "events.out.tfevents.*"));
        var rows = ResultsCsv.Read(Path.Combine(run, "results.csv"));
        Assert.Equal(new[] { 1.0, 2.0, 3.0 }, rows.Select(r => r["epoch"]));
        Assert.All(rows, r => Assert.True(r["train/box_loss"] > 0 && double.IsFinite(r["train/box_loss"])));
        Assert.Equal(ResultsCsv.Columns, rows[0].Keys);
        var args = ArgsYaml.Deserialize(File.ReadAllText(Path.Combine(run, "args.yaml")));
        Assert.Equal((3, 320, 4), (args.Epochs, args.Imgsz, args.Batch));
        // best weights load back as an 80-class YOLOv8n with Ultralytics' keys
        var best = ModelFactory.Create(Path.Combine(run, "weights", "best.safetensors"));
        Assert.Equal(80, best.Nc);
        Assert.Contains("model.22.dfl.conv.weight", best.state_dict().Keys);
        Assert.Equal(4, done.Final!.Images);
        Assert.Equal(17, done.Final.Instances);
    }

    [Fact]
    public void ShapesOnCpuPicksSmallImagesAndFewEpochsUnlessGiven()
    {
        var resolved = TrainingSetup.ResolveDefaults(Args("data=shapes"), cpu: true);
        Assert.Equal((TrainingSetup.ShapesCpuImageSize, TrainingSetup.ShapesCpuEpochs), (resolved.Imgsz, resolved.Epochs));
        var given = TrainingSetup.ResolveDefaults(Args("data=shapes", "imgsz=320", "epochs=3"), cpu: true);
        Assert.Equal((320, 3), (given.Imgsz, given.Epochs));
        var gpu = TrainingSetup.ResolveDefaults(Args("data=shapes"), cpu: false);
        Assert.Equal((640, 100), (gpu.Imgsz, gpu.Epochs));
        Assert.Equal(Math.Min(8, Environment.ProcessorCount), resolved.Workers);
    }

    [Fact]
    public void TinyModelLearnsShapesWithinMinutes()
    {
        // A 1/8-width YOLOv8 (s8 scale) on the built-in shapes set at 96 px, 10 epochs (mosaic off for the last 5),
        // nominal batch 16 so that every batch is an optimiser step. Measured: mAP50 0.534 after epoch 10.
        string dir = TestModels.TempDir();
        var done = new Trainer(Args("data=shapes", $"model={TinyModelYaml(dir, "s8")}", "epochs=10", "imgsz=96",
            "nbs=16", "close_mosaic=5", "workers=2", "device=cpu", $"project={dir}")).Train();
        var rows = ResultsCsv.Read(Path.Combine(done.RunDirectory, "results.csv"));
        Assert.True(rows[^1]["metrics/mAP50(B)"] >= 0.45, $"mAP50 {rows[^1]["metrics/mAP50(B)"]:0.000} after 10 epochs");
        Assert.True(rows[^1]["train/box_loss"] < rows[0]["train/box_loss"] * 0.5);
        Assert.Equal(rows.Max(r => r["metrics/mAP50(B)"] * 0.1 + r["metrics/mAP50-95(B)"] * 0.9),
            done.Final!.Metrics.Fitness, 4); // best.safetensors is the best-fitness epoch

        // osprey val on the same weights: the same metrics, and predictions.json (COCO format, original pixels)
        // re-scored against the labels gives the reported mAP to 0.001.
        var report = ValidationRun.Run(Args("data=shapes", $"model={done.BestWeights}", "imgsz=96", "batch=32",
            "device=cpu", $"project={dir}", "save_json=True"));
        Assert.Equal(done.Final.Metrics.MAP50, report.Result.Metrics.MAP50, 6);
        Assert.Equal(done.Final.Metrics.MAP50To95, report.Result.Metrics.MAP50To95, 6);
        var rescored = RescoreJson(report.PredictionsJson!, DetectionDataset.Load(DatasetCatalog.Resolve("shapes"), DatasetSplit.Val));
        Assert.Equal(report.Result.Metrics.MAP50, rescored.MAP50, 3);
        Assert.Equal(report.Result.Metrics.MAP50To95, rescored.MAP50To95, 3);
        Assert.True(File.Exists(Path.Combine(report.RunDirectory, "PR_curve.png")));
    }

    // COCO results → evaluator: image_id is the file stem (a number when numeric), bbox [x, y, w, h] in original pixels.
    static DetectionMetrics RescoreJson(string json, DetectionDataset labels)
    {
        var byImage = JsonNode.Parse(File.ReadAllText(json))!.AsArray()
            .GroupBy(p => p!["image_id"]!.ToString())
            .ToDictionary(g => g.Key, g => g.Select(p =>
            {
                var b = p!["bbox"]!.AsArray().Select(v => v!.GetValue<double>()).ToArray();
                return new Detection(b[0], b[1], b[0] + b[2], b[1] + b[3], p["score"]!.GetValue<double>(), p["category_id"]!.GetValue<int>());
            }).ToList());
        var evaluator = new CocoEvaluator();
        for (int i = 0; i < labels.Count; i++)
        {
            string stem = Path.GetFileNameWithoutExtension(labels.Images[i].ImagePath);
            if (long.TryParse(stem, NumberStyles.None, CultureInfo.InvariantCulture, out long id)) stem = id.ToString(CultureInfo.InvariantCulture);
            evaluator.Update(i, byImage.GetValueOrDefault(stem) ?? new List<Detection>(), DetectionValidator.GroundTruthOf(labels.Images[i]));
        }
        Assert.True(byImage.Count > 0);
        return evaluator.Compute();
    }
}
