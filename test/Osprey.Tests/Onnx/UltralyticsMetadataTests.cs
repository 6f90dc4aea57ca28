using System.Text.RegularExpressions;
using Google.Protobuf;
using ModelProto = global::Onnx.ModelProto;
using OpenCvSharp;
using Osprey.Inference;
using Osprey.Models;
using Osprey.Onnx;
using Osprey.Tests.Inference;
using Osprey.Tests.Models;

namespace Osprey.Tests.Onnx;

/// <summary>
/// An export's metadata_props are Ultralytics' for the same model and arguments, key by key and value by value (the date and
/// the versions aside): the expected values are written out here, and compared with the metadata Ultralytics 8.3.143 wrote
/// into the shared int8 YOLOv8n export. .NET consumers parse them literally (the family from the description, the author).
/// </summary>
public class UltralyticsMetadataTests
{
    const string License = "AGPL-3.0 License (https://ultralytics.com/license)";

    static List<(string Key, string Value)> Metadata(ModelProto proto) => proto.MetadataProps.Select(p => (p.Key, p.Value)).ToList();

    // The reference file's metadata (Ultralytics 8.3.143), in its order.
    static List<(string Key, string Value)> Reference() =>
        Metadata(ModelProto.Parser.ParseFrom(File.ReadAllBytes(ReferenceDetections.OnnxPath)));

    // Everything but the date and the versions, which are checked for their form.
    static List<(string Key, string Value)> Comparable(List<(string Key, string Value)> metadata)
    {
        var date = metadata.Single(m => m.Key == "date").Value;
        Assert.Matches(new Regex(@"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{6})?$"), date);      // Python's datetime.now().isoformat()
        Assert.Matches(new Regex(@"^\d+\.\d+\.\d+$"), metadata.Single(m => m.Key == "version").Value);
        return metadata.Where(m => m.Key is not ("date" or "version" or "osprey_version" or "onnx.infer")).ToList();
    }

    [Fact]
    public void YoloV8nTrainedOnCoco8WritesUltralyticsValuesThroughItsWeightsFile()
    {
        string cocoNames = Reference().Single(m => m.Key == "names").Value;
        string dir = TestModels.TempDir();
        string weights = Path.Combine(dir, "best.safetensors");
        using (var trained = DetectionModel.FromYaml("yolov8n.yaml"))
        {
            // What the trainer sets on the weights it saves: the run's data= and the dataset's names.
            trained.Trained = new TrainedOn("coco8.yaml", UltralyticsMetadata.ParseNames(cocoNames));
            ModelWeights.Save(trained, weights);
        }
        Assert.Equal("coco8.yaml", TrainedOn.ReadMetadata(weights)["data"]);
        using var model = ModelFactory.Create(weights);
        Assert.Equal("person", model.Names[0]);
        string path = OnnxComparison.TempPath("meta-v8n");
        try
        {
            var metadata = Metadata(OnnxExporter.Export(model, path, new OnnxExportOptions { Opset = 11 }));
            Assert.Equal(new[] { "description", "author", "date", "version", "license", "docs", "stride", "task", "batch", "imgsz", "names",
                "args", "channels", "osprey_version" }, metadata.Select(m => m.Key));
            Assert.Equal(new (string, string)[]
            {
                ("description", "Ultralytics YOLOv8n model trained on coco8.yaml"),
                ("author", "Ultralytics"),
                ("license", License),
                ("docs", "https://docs.ultralytics.com"),
                ("stride", "32"),
                ("task", "detect"),
                ("batch", "1"),
                ("imgsz", "[640, 640]"),
                ("names", cocoNames),
                ("args", "{'batch': 1, 'half': False, 'dynamic': False, 'simplify': True, 'opset': 11, 'nms': False}"),
                ("channels", "3"),
            }, Comparable(metadata));
            Assert.Equal(UltralyticsMetadata.Version, metadata.Single(m => m.Key == "version").Value);
            Assert.Equal(Osprey.Runtime.TorchRuntime.OspreyVersion, metadata.Single(m => m.Key == "osprey_version").Value);

            // The import reads the family and the training data back from the description.
            using var imported = OnnxImport.Load(path, emulateQuantization: false);
            Assert.Equal("n", imported.Scale);
            Assert.Equal("coco8.yaml", imported.Trained?.Data);
        }
        finally
        {
            File.Delete(path);
            Directory.Delete(dir, recursive: true);
        }
    }

    [Fact]
    public void Yolo11AndYoloV10NameTheirFamilyAndV10IsEndToEnd()
    {
        using var yolo11 = DetectionModel.FromYaml("yolo11n.yaml", nc: 2);
        yolo11.Trained = new TrainedOn("data/parts.yaml", new[] { "bolt", "it's" });
        var eleven = Metadata(OnnxExporter.Build(yolo11, new OnnxExportOptions { Height = 64, Width = 96, Batch = 2, Dynamic = true, Opset = 17 }));
        Assert.Equal(new (string, string)[]
        {
            ("description", "Ultralytics YOLO11n model trained on data/parts.yaml"),
            ("author", "Ultralytics"), ("license", License), ("docs", "https://docs.ultralytics.com"),
            ("stride", "32"), ("task", "detect"), ("batch", "2"), ("imgsz", "[64, 96]"),
            ("names", "{0: 'bolt', 1: \"it's\"}"),
            ("args", "{'batch': 2, 'half': False, 'dynamic': True, 'simplify': True, 'opset': 17, 'nms': False}"),
            ("channels", "3"),
        }, Comparable(eleven));

        using var v10 = DetectionModel.FromYaml("yolov10s.yaml", nc: 3);              // untrained: no "trained on", a trailing space
        var ten = Metadata(OnnxExporter.Build(v10, new OnnxExportOptions { Height = 64, Width = 64 }));
        Assert.Equal(new (string, string)[]
        {
            ("description", "Ultralytics YOLOv10s model "),
            ("author", "Ultralytics"), ("license", License), ("docs", "https://docs.ultralytics.com"),
            ("stride", "32"), ("task", "detect"), ("batch", "1"), ("imgsz", "[64, 64]"),
            ("names", "{0: 'class0', 1: 'class1', 2: 'class2'}"),
            ("args", "{'batch': 1, 'half': False, 'dynamic': False, 'simplify': True, 'opset': 17, 'nms': False}"),
            ("channels", "3"),
            ("end2end", "True"),
        }, Comparable(ten));
    }

    [Fact]
    public void ExportOfTheImportedUltralyticsFileHasItsMetadataAndFindsItsObjectsInOnnxRuntime()
    {
        using var model = OnnxImport.Load(ReferenceDetections.OnnxPath, emulateQuantization: false);
        Assert.Equal("coco.yaml", model.Trained?.Data);
        string path = OnnxComparison.TempPath("meta-reexport");
        try
        {
            // The reference was exported with opset 11 (args); with the same arguments every value is the reference's.
            var metadata = Metadata(OnnxExporter.Export(model, path, new OnnxExportOptions { Opset = 11 }));
            Assert.Equal(Comparable(Reference()), Comparable(metadata));
            Assert.Equal("Ultralytics YOLOv8n model trained on coco.yaml", metadata[0].Value);

            // The fp32 graph of the dequantised weights finds the objects ONNX Runtime found with the int8 file on bus.jpg: the
            // same count and classes, confidences within 0.05, boxes within 20 px of 810 (measured: 0.017 and 15 px, the bus's
            // and the cut-off person's edges; int8 and fp32 arithmetic differ, this is not the bit-exact emulation).
            using var detector = Detectors.Open(path);
            Assert.Equal("onnxruntime", detector.Backend);
            var bus = ReferenceDetections.Load().Single(e => e.Image.EndsWith("bus.jpg", StringComparison.Ordinal));
            using var image = Cv2.ImRead(bus.Image);
            var errors = new List<(float Conf, float Box)>();
            var problems = ReferenceDetections.Compare(bus, detector.Predict(new[] { image })[0], 0.05f, 20f, errors);
            Assert.True(problems.Count == 0, string.Join("\n", problems) + $"\nerrors: {string.Join(", ", errors)}");
        }
        finally
        {
            File.Delete(path);
        }
    }
}
