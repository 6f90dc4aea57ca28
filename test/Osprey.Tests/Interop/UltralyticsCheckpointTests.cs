using System.IO.Compression;
using System.Text;
using System.Text.Json;
using Osprey.Inference;
using Osprey.Interop;
using Osprey.Models;
using Osprey.Models.Families;
using Osprey.Models.Heads;
using Osprey.Onnx;
using Osprey.Tests.Inference;
using Osprey.Tests.Models;
using static TorchSharp.torch;

namespace Osprey.Tests.Interop;

/// <summary>
/// Ultralytics <c>.pt</c> checkpoints: made here by python3-torch the way Ultralytics' trainer pickles one (a dict with
/// the whole fp16 DetectionModel, its classes stand-ins under Ultralytics' module paths; make_ultralytics_pt.py) from
/// weights Osprey exported, then read by Osprey through <c>model=x.pt</c>.
/// </summary>
public class UltralyticsCheckpointTests
{
    /// <summary>
    /// The official YOLOv8n weights (the shared int8 ONNX file, imported as a plain float model) pickled as an Ultralytics
    /// checkpoint in fp16: every tensor Osprey reads back is the fp16 rounding of the imported one, bit for bit. On
    /// bus.jpg it finds what the same weights find in fp32 (within 0.005 conf and 1 px; measured 0.0006 and 0.09 px) and
    /// ONNX Runtime's int8 reference detections (4 persons, 1 bus): same classes and count, confidences within 0.03, boxes
    /// within 16 px. That box tolerance is the int8 model's own: its activations are quantised, and the float model
    /// (with or without fp16 weights) places the bus 15.0 px and one person 13.3 px from ONNX Runtime's boxes, the other
    /// three within 0.8 px.
    /// </summary>
    [SkippableFact]
    public void PickledYoloV8nLoadsAndDetectsLikeTheOnnxReference()
    {
        PythonTorch.SkipIfMissing();
        string dir = TestModels.TempDir();
        try
        {
            using var imported = OnnxImport.Import(ReferenceDetections.OnnxPath, emulateQuantization: false).Model;
            string pt = WriteCheckpoint(imported, dir, "yolov8n.pt", ema: false);
            Assert.Contains("ultralytics.nn.tasks\nDetectionModel\n", PickleText(pt));   // pickled as Ultralytics does

            using (var checkpoint = UltralyticsCheckpoint.TryRead(pt)!)
            {
                Assert.Equal("model", checkpoint.WeightsFrom);
                Assert.Equal("8.3.143", checkpoint.Version);
                Assert.Equal(0.01, (double)checkpoint.TrainArgs["lr0"]!);
                Assert.Equal(80, checkpoint.Names.Count);
            }
            using var loaded = ModelFactory.Create(pt);
            Assert.Equal("person", loaded.Names[0]);
            Assert.Equal("toothbrush", loaded.Names[79]);
            Assert.Equal("coco.yaml", loaded.Trained?.Data);                                 // train_args["data"], as Ultralytics keeps it
            AssertFp16Rounded(imported, loaded);

            var expected = ReferenceDetections.Load().Single(e => e.Image.EndsWith("bus.jpg", StringComparison.Ordinal));
            using var predictor = new Predictor(loaded);
            using var float32 = new Predictor(imported);
            var fromPt = predictor.Predict(expected.Image);
            var errors = new List<(float Conf, float Box)>();
            var floatErrors = new List<(float Conf, float Box)>();
            var problems = ReferenceDetections.Compare(expected, fromPt, confTolerance: 0.03f, boxTolerance: 16f, errors);
            ReferenceDetections.Compare(expected, float32.Predict(expected.Image), confTolerance: 1f, boxTolerance: 1000f, floatErrors);
            var vsFloat = ReferenceDetections.Compare(AsExpected(expected, float32.Predict(expected.Image)), fromPt, 0.005f, 1f);
            Assert.Equal(5, expected.Detections.Count);
            Assert.Equal(5, errors.Count);
            Assert.True(problems.Count + vsFloat.Count == 0, string.Join("\n", problems.Concat(vsFloat)) +
                $"\npt: {string.Join(", ", errors)}\nfloat: {string.Join(", ", floatErrors)}");
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    /// <summary>
    /// A YOLOv10n and a YOLO11n checkpoint as a training-time last.pt (random Osprey models, the weights under <c>ema</c>
    /// with <c>model</c> None, as Ultralytics' attempt_load prefers, plus the optimizer's state and a numpy best_fitness) rebuild their family from the pickled <c>yaml</c> (no name, no sidecar says it:
    /// the file is called model.pt), with the fp16 rounding of every tensor; a new nc keeps every other tensor.
    /// </summary>
    [SkippableTheory]
    [InlineData("yolov10n.yaml", "YOLOv10")]
    [InlineData("yolo11n.yaml", "YOLO11")]
    public void FamilyComesFromThePickledYaml(string yaml, string family)
    {
        PythonTorch.SkipIfMissing();
        string dir = TestModels.TempDir();
        try
        {
            manual_seed(5);
            using var source = DetectionModel.FromYaml(yaml, nc: 3);
            TestModels.RandomiseBatchNorms(source, seed: 5);
            string pt = WriteCheckpoint(source, dir, "model.pt", ema: true);
            Assert.Matches("numpy\\.(_core|core)\\.multiarray\nscalar\n", PickleText(pt));        // best_fitness as numpy pickles it

            using (var checkpoint = UltralyticsCheckpoint.TryRead(pt)!)
                Assert.Equal(("ema", 7, 0.6543), (checkpoint.WeightsFrom, checkpoint.Epoch, checkpoint.BestFitness));
            using var loaded = ModelFactory.Create(pt);
            Assert.Equal(family, ModelFamilyNames.Of(loaded.Config));
            Assert.Equal(yaml.StartsWith("yolov10", StringComparison.Ordinal), loaded.Head is V10Detect);
            Assert.Equal(3, loaded.Nc);
            AssertFp16Rounded(source, loaded);

            var (retargeted, transferred) = ModelFactory.FromCheckpoint(pt, nc: 7)!.Value;
            using (retargeted)
            {
                int total = retargeted.state_dict().Count;
                int classBranch = retargeted.state_dict().Count(kv => !source.state_dict()[kv.Key].shape.SequenceEqual(kv.Value.shape));
                Assert.True(classBranch > 0);
                Assert.Equal(total - classBranch, transferred);
            }
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    /// <summary>Exports <paramref name="model"/>'s weights and yaml, and has python3-torch pickle them as Ultralytics does.</summary>
    internal static string WriteCheckpoint(DetectionModel model, string dir, string name, bool ema)
    {
        string weights = Path.Combine(dir, "weights.safetensors"), meta = Path.Combine(dir, "meta.json");
        ModelWeights.Save(model, weights, writeSidecar: false);
        var yaml = CheckpointYaml.ToDict(model.Config.ToPinnedYaml());
        yaml.Remove("names");
        File.WriteAllText(meta, JsonSerializer.Serialize(new { yaml, names = model.Names, ema }));
        string pt = Path.Combine(dir, name);
        PythonTorch.Run(PythonTorch.Script("make_ultralytics_pt.py"), weights, meta, pt);
        return pt;
    }

    private static ReferenceDetections.Expected AsExpected(ReferenceDetections.Expected image, Prediction prediction) =>
        image with { Detections = prediction.Detections.Select(d => (d.ClassId, d.Confidence, new[] { d.Box.X1, d.Box.Y1, d.Box.X2, d.Box.Y2 })).ToList() };

    internal static string PickleText(string pt)
    {
        using var zip = ZipFile.OpenRead(pt);
        using var stream = zip.Entries.Single(e => e.FullName.EndsWith("/data.pkl", StringComparison.Ordinal)).Open();
        using var memory = new MemoryStream();
        stream.CopyTo(memory);
        return Encoding.Latin1.GetString(memory.ToArray());
    }

    private static void AssertFp16Rounded(DetectionModel source, DetectionModel loaded)
    {
        using var scope = NewDisposeScope();
        var expected = source.state_dict();
        var actual = loaded.state_dict();
        Assert.Equal(expected.Keys.OrderBy(k => k), actual.Keys.OrderBy(k => k));
        foreach (var (key, tensor) in expected)
        {
            var rounded = tensor.is_floating_point() ? tensor.to_type(ScalarType.Float16).to_type(tensor.dtype) : tensor;
            Assert.True(rounded.shape.SequenceEqual(actual[key].shape) && rounded.eq(actual[key]).all().item<bool>(), key);
        }
    }
}
