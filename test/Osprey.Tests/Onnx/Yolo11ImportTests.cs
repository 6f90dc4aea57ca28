using Google.Protobuf;
using Onnx;
using Osprey.Models;
using Osprey.Models.Blocks;
using Osprey.Models.Building;
using Osprey.Models.Heads;
using Osprey.Onnx;
using Osprey.Tests.Models;
using Xunit.Abstractions;
using static TorchSharp.torch;

namespace Osprey.Tests.Onnx;

/// <summary>A YOLO11 export (Osprey's names and torch.onnx's as in Ultralytics' files) imports back into the same model.</summary>
public class Yolo11ImportTests(ITestOutputHelper output)
{
    // The imported model's decoded output against the source model's on the bus image and noise.
    void AssertSamePredictions(DetectionModel source, DetectionModel imported, int size, string what)
    {
        source.eval();
        imported.eval();
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        manual_seed(31);
        foreach (var input in new[] { Yolo11OnnxTests.RealImage(size), rand(1, 3, size, size) })
        {
            var (boxes, scores) = OnnxComparison.Difference(source.Predict(input), imported.Predict(input));
            // The raw maps too (class logits included, which the sigmoid flattens for a random model), relative to their range.
            float maps = source.ForwardFeatures(input).Zip(imported.ForwardFeatures(input),
                (a, b) => ((a - b).abs().max() / a.abs().max()).item<float>()).Max();
            output.WriteLine($"{what}: box rel {boxes:g3}, score {scores:g3}, raw maps rel {maps:g3}");
            Assert.True(boxes < 1e-4 && scores < 1e-5 && maps < 1e-5, $"{what}: box rel {boxes}, score {scores}, maps {maps}");
        }
    }

    static ModelProto Export(DetectionModel model, int size) => OnnxExporter.Build(model, new OnnxExportOptions { Height = size, Width = size });

    static void Write(ModelProto proto, string path) => File.WriteAllBytes(path, proto.ToByteArray());

    [Fact]
    public void OspreyExportOfYolo11nImportsBack()
    {
        manual_seed(27);
        using var source = DetectionModel.FromYaml("yolo11n.yaml");
        TestModels.RandomiseBatchNorms(source, seed: 27);
        string path = OnnxComparison.TempPath("yolo11n-import");
        try
        {
            var proto = Export(source, 320);
            Write(proto, path);
            var result = OnnxImport.Import(path, emulateQuantization: false);
            using var imported = result.Model;
            Assert.Equal(("n", 80), (result.Scale, result.Nc));
            Assert.Equal(proto.Graph.Node.Count(n => n.OpType == "Conv"), result.Convolutions);
            Assert.IsType<Yolo11Detect>(imported.Head);
            Assert.Equal(2_624_080, imported.ParameterCount);
            Assert.False(imported.IsFused);
            AssertSamePredictions(source, imported, 320, "Osprey names");
            using var viaFactory = ModelFactory.Create(path);
            Assert.Equal(2_624_080, viaFactory.ParameterCount);
        }
        finally
        {
            File.Delete(path);
        }
    }

    [Theory]
    [InlineData("Ultralytics YOLO11n model trained on coco.yaml")]
    [InlineData(null)]
    public void UltralyticsNamedExportImports(string? description)
    {
        manual_seed(28);
        using var source = DetectionModel.FromYaml("yolo11n.yaml", nc: 3);
        TestModels.RandomiseBatchNorms(source, seed: 28);
        string path = OnnxComparison.TempPath("yolo11n-ultralytics");
        long unfused = source.ParameterCount; // the export fuses the source in place
        try
        {
            var proto = Export(source, 256);
            UltralyticsNaming.Apply(proto, source);
            Assert.Contains(proto.Graph.Node, n => n.Name == "/model.10/m/m.0/attn/qkv/conv/Conv");
            Assert.Contains(proto.Graph.Node, n => n.Name == "/model.8/m.0/m/m.0/cv1/conv/Conv");
            Assert.Contains(proto.Graph.Node, n => n.Name == "/model.23/cv3.2/cv3.2.0/cv3.2.0.0/conv/Conv");
            Assert.DoesNotContain(proto.Graph.Initializer, t => t.Name.StartsWith("model.10.", StringComparison.Ordinal));
            var meta = proto.MetadataProps.Single(p => p.Key == "description");
            if (description is null) proto.MetadataProps.Remove(meta); // the family is then found by trying YOLOv8, then YOLO11
            else meta.Value = description;
            Write(proto, path);
            var result = OnnxImport.Import(path, emulateQuantization: false);
            using var imported = result.Model;
            Assert.Equal(("n", 3), (result.Scale, result.Nc));
            Assert.Equal(unfused, imported.ParameterCount);
            AssertSamePredictions(source, imported, 256, $"torch.onnx names, description {description ?? "none"}");
        }
        finally
        {
            File.Delete(path);
        }
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void ExportWithEveryV10BlockImportsIntoItsConfig(bool ultralyticsNames)
    {
        manual_seed(29);
        var config = ModelConfig.Parse(YoloV10BlockTests.V10nWithDetect(), "yolov10n.yaml", nc: 2);
        using var source = new DetectionModel(config);
        TestModels.RandomiseBatchNorms(source, seed: 29);
        string path = OnnxComparison.TempPath("v10-import");
        try
        {
            var proto = Export(source, 256);
            if (ultralyticsNames) UltralyticsNaming.Apply(proto, source);
            Assert.Equal(ultralyticsNames, proto.Graph.Node.Any(n => n.Name == "/model.22/m.0/cv1/cv1.2/conv/Conv"));
            Write(proto, path);
            var result = OnnxImport.Import(path, config, ModuleRegistry.Default, emulateQuantization: false);
            using var imported = result.Model;
            // The file's fused RepVGGDW filled the 7×7; the 3×3 branch it absorbed adds nothing (zero weights).
            var rep = imported.modules().OfType<RepVGGDW>().Single();
            Assert.False(rep.IsFused);
            Assert.Equal(0f, imported.state_dict()["model.22.m.0.cv1.2.conv1.conv.weight"].abs().max().item<float>());
            AssertSamePredictions(source, imported, 256, $"v10 blocks, Ultralytics names {ultralyticsNames}");
        }
        finally
        {
            File.Delete(path);
        }
    }
}
