using System.Security.Cryptography;
using System.Text.Json;
using Osprey.Config;
using Osprey.Data;
using Osprey.Distributed;
using Osprey.Interop;
using Osprey.Models;
using Osprey.Tests.Models;
using Osprey.Training;
using static TorchSharp.torch;

namespace Osprey.Tests.Interop;

/// <summary>
/// <c>save_pt=True</c>: weights/last.pt and best.pt beside Osprey's own files, read by python3-torch's <c>torch.load</c>
/// (plain data: no Osprey or Ultralytics class), and <c>model=x.pt</c> as a warm start (Ultralytics' transfer).
/// </summary>
public class SavePtTests
{
    static (string Dir, string Data) Files()
    {
        string dir = TestModels.TempDir();
        return (dir, ShapesDataset.EnsureGenerated(new ShapesOptions(ImageSize: 64, TrainImages: 4, ValImages: 2, Seed: 3), dir));
    }

    static CheckpointMetadata Metadata => new(4, 0.25, CheckpointYaml.ToDict(ArgsYaml.Serialize(ArgsParser.Parse(["lr0=0.02"]))));

    /// <summary>Osprey reads back what it wrote: every tensor bit for bit, the architecture, names and metadata.</summary>
    [Fact]
    public void SavedCheckpointReadsBackInOsprey()
    {
        string dir = TestModels.TempDir();
        try
        {
            manual_seed(3);
            using var source = TestModels.Tiny(5);
            TestModels.RandomiseBatchNorms(source, seed: 3);
            string pt = Path.Combine(dir, "tiny.pt");
            UltralyticsCheckpointWriter.Save(source, pt, Metadata);

            using (var checkpoint = UltralyticsCheckpoint.TryRead(pt)!)
            {
                Assert.Equal("model_state", checkpoint.WeightsFrom);
                Assert.Equal(4, checkpoint.Epoch);
                Assert.Equal(0.02, (double)checkpoint.TrainArgs["lr0"]!);
                Assert.Equal(source.Names, checkpoint.Names);
            }
            using var loaded = ModelFactory.Create(pt);
            Assert.Equal(("t", 5, source.Config.Layers.Count), (loaded.Scale, loaded.Nc, loaded.Config.Layers.Count));
            foreach (var (key, tensor) in source.state_dict())
                Assert.True(tensor.eq(loaded.state_dict()[key]).all().item<bool>(), key);
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    /// <summary>
    /// A run from <c>model=source.pt</c> on a dataset with another class count transfers every tensor whose key and
    /// shape match (logged as Ultralytics logs it) and, with save_pt=True, writes last.pt and best.pt that python3-torch
    /// loads: only globals of torch's weights-only allow-list, torch.save's entries, each tensor's dtype, shape and bytes
    /// (sha256) equal to the EMA weights Osprey saved, and the metadata.
    /// </summary>
    [SkippableFact]
    public void RunFromAPtWritesPtFilesThatTorchLoads()
    {
        PythonTorch.SkipIfMissing();
        var (dir, data) = Files();
        try
        {
            manual_seed(11);
            using var source = TestModels.Tiny(ShapesDataset.Names.Count + 2);
            string sourcePt = Path.Combine(dir, "source.pt");
            UltralyticsCheckpointWriter.Save(source, sourcePt, Metadata);
            var args = ArgsParser.Parse([$"data={data}", $"model={sourcePt}", "imgsz=64", "batch=2", "workers=1", "device=cpu",
                $"project={dir}", "plots=False", "save_pt=True"]);
            using var run = TrainingRun.Setup(args, null, CPU, new DataParallel());
            int matching = run.Model.state_dict().Count(kv => source.state_dict()[kv.Key].shape.SequenceEqual(kv.Value.shape));
            Assert.True(matching < run.Model.state_dict().Count && matching > 10);
            Assert.Contains($"Transferred {matching}/{run.Model.state_dict().Count} items from pretrained weights", run.SetupLog);
            Assert.Equal(ShapesDataset.Names.Count, run.Model.Nc);

            run.SaveEpoch(0, isBest: true);
            foreach (string name in new[] { "last.pt", "best.pt" })
            {
                string pt = Path.Combine(run.Files.Weights, name);
                using var json = JsonDocument.Parse(PythonTorch.Run(PythonTorch.Script("check_osprey_pt.py"), pt));
                AssertTorchReads(json.RootElement, run);
                // torch >= 2 loaded it with weights_only=True above; torch 1.13's weights-only reader knows every opcode but
                // BINFLOAT (71: the floats of train_args and best_fitness), so there it may only fail on that.
                string? strict = json.RootElement.GetProperty("weights_only_error").GetString();
                Assert.True(strict is null || strict.Contains("Unsupported operand 71", StringComparison.Ordinal), strict);
            }
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    private static void AssertTorchReads(JsonElement file, TrainingRun run)
    {
        Assert.Empty(file.GetProperty("not_allowed").EnumerateArray());
        Assert.Equal(["collections.OrderedDict", "torch.FloatStorage", "torch.LongStorage", "torch._utils._rebuild_tensor_v2"],
            file.GetProperty("globals").EnumerateArray().Select(g => g.GetString()!).Order(StringComparer.Ordinal));
        var entries = file.GetProperty("entries").EnumerateArray().Select(e => e.GetString()).ToList();
        Assert.Equal(["archive/data.pkl", "archive/byteorder", "archive/data/0"], entries.Take(3));
        Assert.Equal("archive/version", entries[^1]);
        Assert.Equal("OrderedDict", file.GetProperty("state_type").GetString());
        var tensors = file.GetProperty("tensors");
        using var scope = NewDisposeScope();
        var ema = run.EmaModel.state_dict();
        Assert.Equal(ema.Count, tensors.EnumerateObject().Count());
        foreach (var (key, tensor) in ema)
        {
            var entry = tensors.GetProperty(key).EnumerateArray().ToArray();
            string dtype = tensor.dtype == ScalarType.Int64 ? "torch.int64" : "torch.float32";
            Assert.Equal(dtype, entry[0].GetString());
            Assert.Equal(tensor.shape, entry[1].EnumerateArray().Select(d => d.GetInt64()));
            Assert.Equal(Convert.ToHexStringLower(SHA256.HashData(tensor.contiguous().bytes)), entry[2].GetString());
        }
        Assert.Equal(ShapesDataset.Names, file.GetProperty("names").EnumerateObject().Select(n => n.Value.GetString()));  // the dataset's
        Assert.Equal(run.Model.Nc, file.GetProperty("nc").GetInt32());
        Assert.Equal(run.Model.Config.Layers.Count, file.GetProperty("yaml_layers").GetInt32());
        Assert.Equal("t", file.GetProperty("yaml_scale").GetString());
        var trainArgs = file.GetProperty("train_args");
        Assert.Equal((0.01, 64, true, "cpu"), (trainArgs.GetProperty("lr0").GetDouble(), trainArgs.GetProperty("imgsz").GetInt32(),
            trainArgs.GetProperty("save_pt").GetBoolean(), trainArgs.GetProperty("device").GetString()));
        Assert.Equal(0, file.GetProperty("epoch").GetInt32());
        Assert.StartsWith(DateTime.Now.ToString("yyyy-MM-dd", System.Globalization.CultureInfo.InvariantCulture), file.GetProperty("date").GetString());
    }
}
