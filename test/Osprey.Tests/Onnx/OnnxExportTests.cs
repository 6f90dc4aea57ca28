using OpenCvSharp;
using Osprey.Inference;
using Osprey.Models;
using Osprey.Onnx;
using Osprey.Tests.Inference;
using static TorchSharp.torch;

namespace Osprey.Tests.Onnx;

/// <summary>Exported graphs run in ONNX Runtime and give TorchSharp's output (fp32, 1e-4).</summary>
public class OnnxExportTests
{
    private static (float Max, float Scores) Compare(Tensor ours, Tensor theirs)
    {
        var diff = (ours - theirs).abs();
        // boxes are in pixels (up to 640): compare relative to max(1, |value|); scores absolutely
        var boxes = (diff.narrow(1, 0, 4) / ours.narrow(1, 0, 4).abs().clamp_min(1)).max().item<float>();
        var scores = diff.narrow(1, 4, ours.shape[1] - 4).max().item<float>();
        return (boxes, scores);
    }

    private static Tensor RealImage(int size)
    {
        using var image = Cv2.ImRead(Path.Combine(Osprey.Tests.Data.DataTestFiles.SharedData, "images", "bus.jpg"));
        using var boxed = Letterbox.Apply(image, size, size, out _);
        return Letterbox.ToTensor(new[] { boxed });
    }

    [Fact]
    public void StaticExportOfImportedWeightsMatchesTorchSharp()
    {
        using var model = OnnxImport.Load(ReferenceDetections.OnnxPath, emulateQuantization: false);
        string path = Path.Combine(Path.GetTempPath(), $"osprey-static-{Guid.NewGuid():N}.onnx");
        try
        {
            var proto = OnnxExporter.Export(model, path, new OnnxExportOptions { Height = 640, Width = 640 });
            var meta = proto.MetadataProps.ToDictionary(p => p.Key, p => p.Value);
            Assert.Equal("[640, 640]", meta["imgsz"]);
            Assert.StartsWith("{0: 'person', 1: 'bicycle'", meta["names"]);
            Assert.Equal("32", meta["stride"]);
            Assert.Equal("detect", meta["task"]);
            using var ort = new OrtRunner(path);
            Assert.Equal(new[] { 1, 3, 640, 640 }, ort.Session.InputMetadata["images"].Dimensions);
            Assert.Equal(new[] { 1, 84, 8400 }, ort.Session.OutputMetadata["output0"].Dimensions);
            using var noGrad = no_grad();
            foreach (var input in new[] { RealImage(640), rand(1, 3, 640, 640) })
            {
                var ours = model.Predict(input);
                var theirs = ort.Run(input);
                var (boxes, scores) = Compare(ours, theirs);
                Assert.True(boxes < 1e-4 && scores < 1e-4, $"box rel {boxes}, score {scores}");
            }
        }
        finally
        {
            File.Delete(path);
        }
    }

    [Fact]
    public void DynamicExportTakesAnyBatchAndSize()
    {
        using var model = DetectionModel.FromYaml("yolov8n.yaml");
        string path = Path.Combine(Path.GetTempPath(), $"osprey-dynamic-{Guid.NewGuid():N}.onnx");
        try
        {
            OnnxExporter.Export(model, path, new OnnxExportOptions { Dynamic = true, Height = 320, Width = 320 });
            using var ort = new OrtRunner(path);
            using var noGrad = no_grad();
            manual_seed(3);
            foreach (var input in new[] { rand(2, 3, 256, 320), RealImage(320), rand(1, 3, 96, 160) })
            {
                var ours = model.Predict(input);
                var theirs = ort.Run(input);
                Assert.Equal(ours.shape, theirs.shape);
                var (boxes, scores) = Compare(ours, theirs);
                Assert.True(boxes < 1e-4 && scores < 1e-4, $"{string.Join("x", input.shape)}: box rel {boxes}, score {scores}");
            }
        }
        finally
        {
            File.Delete(path);
        }
    }
}
