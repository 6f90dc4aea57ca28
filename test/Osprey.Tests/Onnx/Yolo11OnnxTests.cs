using Google.Protobuf;
using OpenCvSharp;
using Osprey.Inference;
using Osprey.Models;
using Osprey.Models.Building;
using Osprey.Onnx;
using Osprey.Tests.Models;
using Xunit.Abstractions;
using static TorchSharp.torch;

namespace Osprey.Tests.Onnx;

/// <summary>YOLO11 and YOLOv10 blocks exported to ONNX run in ONNX Runtime like TorchSharp (1e-4).</summary>
public class Yolo11OnnxTests(ITestOutputHelper output)
{
    internal static Tensor RealImage(int size)
    {
        using var image = Cv2.ImRead(Path.Combine(Osprey.Tests.Data.DataTestFiles.SharedData, "images", "bus.jpg"));
        using var boxed = Letterbox.Apply(image, size, size, out _);
        return Letterbox.ToTensor(new[] { boxed });
    }

    [Fact]
    public void Yolo11nStaticExportMatchesTorchSharp()
    {
        manual_seed(21);
        using var model = DetectionModel.FromYaml("yolo11n.yaml");
        TestModels.RandomiseBatchNorms(model, seed: 21);
        string path = OnnxComparison.TempPath("yolo11n");
        try
        {
            var proto = OnnxExporter.Export(model, path, new OnnxExportOptions { Height = 320, Width = 320 });
            var meta = proto.MetadataProps.ToDictionary(p => p.Key, p => p.Value);
            // Ultralytics' exporter: f"Ultralytics {pretty_name} model {f'trained on {data}' if data else ''}".
            Assert.Equal("Ultralytics YOLO11n model ", meta["description"]);   // an untrained model: no "trained on"
            Assert.Equal("Ultralytics", meta["author"]);
            Assert.Equal("32", meta["stride"]);
            // C2PSA's attention: two MatMuls, the scale, Softmax over the keys, in the block's scope.
            Assert.Equal(new[] { "/model.10/m/0/attn/MatMul", "/model.10/m/0/attn/MatMul_1" },
                proto.Graph.Node.Where(n => n.OpType == "MatMul").Select(n => n.Name));
            Assert.Equal(3, proto.Graph.Node.Single(n => n.Name == "/model.10/m/0/attn/Softmax").Attribute.Single().I);
            Assert.Equal(64, proto.Graph.Node.Single(n => n.Name == "/model.23/cv3/0/0/0/conv/Conv").Attribute.Single(a => a.Name == "group").I);
            manual_seed(22);
            var worst = OnnxComparison.AssertRunsLikeTorchSharp(model, path, RealImage(320), rand(1, 3, 320, 320));
            output.WriteLine($"yolo11n static 320: largest box rel {worst.Boxes:g3}, score {worst.Scores:g3}");
        }
        finally
        {
            File.Delete(path);
        }
    }

    [Theory]
    [InlineData(11)]
    [InlineData(17)]
    public void Yolo11nDynamicExportTakesAnyBatchAndSize(int opset)
    {
        manual_seed(23);
        using var model = DetectionModel.FromYaml("yolo11n.yaml", nc: 5);
        TestModels.RandomiseBatchNorms(model, seed: 23);
        string path = OnnxComparison.TempPath("yolo11n-dynamic");
        try
        {
            var proto = OnnxExporter.Export(model, path, new OnnxExportOptions { Dynamic = true, Height = 320, Width = 320, Opset = opset });
            var split = proto.Graph.Node.Single(n => n.Name == "/model.10/m/0/attn/Split");
            Assert.Equal(2, split.Attribute.Single(a => a.Name == "axis").I);
            Assert.Equal(opset < 13, split.Attribute.Any(a => a.Name == "split"));
            manual_seed(24);
            var worst = OnnxComparison.AssertRunsLikeTorchSharp(model, path, rand(2, 3, 256, 192), rand(1, 3, 96, 160));
            output.WriteLine($"yolo11n dynamic opset {opset}: largest box rel {worst.Boxes:g3}, score {worst.Scores:g3}");
        }
        finally
        {
            File.Delete(path);
        }
    }

    [Fact]
    public void Yolo11nFp16GraphAgreesWithFp32WithinHalfPrecision()
    {
        // A CUDA export's float16 graph (MatMul, Softmax and the scale in float16) in ONNX Runtime's CPU provider.
        manual_seed(33);
        using var model = DetectionModel.FromYaml("yolo11n.yaml", nc: 4);
        TestModels.RandomiseBatchNorms(model, seed: 33);
        string full = OnnxComparison.TempPath("yolo11n-fp32"), half = OnnxComparison.TempPath("yolo11n-fp16");
        try
        {
            var options = new OnnxExportOptions { Height = 128, Width = 160 };
            OnnxExporter.Export(model, full, options);
            var proto = OnnxExporter.Export(model, half, options with { Half = true });
            Assert.Equal(OnnxTensors.DataType.Float16, proto.Graph.Initializer.Single(t => t.Name == "/model.10/m/0/attn/Constant_scale").DataType);
            using var fullRunner = new OrtRunner(full);
            using var session = new Microsoft.ML.OnnxRuntime.InferenceSession(half);
            using var noGrad = no_grad();
            manual_seed(34);
            var input = rand(1, 3, 128, 160);
            var reference = fullRunner.Run(input);
            var values = input.data<float>().ToArray().Select(v => (Microsoft.ML.OnnxRuntime.Float16)v).ToArray();
            var tensor16 = new Microsoft.ML.OnnxRuntime.Tensors.DenseTensor<Microsoft.ML.OnnxRuntime.Float16>(values, new[] { 1, 3, 128, 160 });
            using var results = session.Run(new[] { Microsoft.ML.OnnxRuntime.NamedOnnxValue.CreateFromTensor("images", tensor16) });
            var ours = tensor(results.First().AsTensor<Microsoft.ML.OnnxRuntime.Float16>().ToArray().Select(h => h.ToFloat()).ToArray())
                .reshape(reference.shape);
            var (boxes, scores) = OnnxComparison.Difference(reference, ours);
            output.WriteLine($"yolo11n fp16 graph vs fp32: box rel {boxes:g3}, score {scores:g3}");
            Assert.True(boxes < 1e-2 && scores < 1e-3, $"box rel {boxes}, score {scores}");
        }
        finally
        {
            File.Delete(full);
            File.Delete(half);
        }
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void EveryV10BlockExports(bool dynamic)
    {
        // yolov10s's layout (SCDown, C2fCIB with RepVGGDW in the backbone and the head, PSA) ending in Detect.
        manual_seed(25);
        using var model = new DetectionModel(ModelConfig.Parse(YoloV10BlockTests.V10nWithDetect("s"), "yolov10s.yaml", nc: 4));
        TestModels.RandomiseBatchNorms(model, seed: 25);
        string path = OnnxComparison.TempPath("v10-blocks");
        try
        {
            var proto = OnnxExporter.Export(model, path, new OnnxExportOptions { Height = 256, Width = 320, Dynamic = dynamic });
            Assert.Equal("Ultralytics YOLOv10s model ", proto.MetadataProps.Single(p => p.Key == "description").Value);
            // The fused RepVGGDW: one 7×7 depthwise Conv with the 3×3 folded in, then SiLU.
            var large = proto.Graph.Node.Single(n => n.Name == "/model.8/m/0/cv1/2/conv/conv/Conv");
            Assert.Equal(new long[] { 7, 7 }, large.Attribute.Single(a => a.Name == "kernel_shape").Ints);
            Assert.DoesNotContain(proto.Graph.Initializer, t => t.Name.Contains("conv1", StringComparison.Ordinal));
            Assert.Equal("/model.10/attn/Softmax", proto.Graph.Node.Single(n => n.OpType == "Softmax" && n.Name.Contains("attn", StringComparison.Ordinal)).Name);
            manual_seed(26);
            var inputs = dynamic ? new[] { rand(2, 3, 128, 192), rand(1, 3, 320, 256) } : new[] { rand(1, 3, 256, 320) };
            var worst = OnnxComparison.AssertRunsLikeTorchSharp(model, path, inputs);
            output.WriteLine($"v10 blocks (dynamic {dynamic}): largest box rel {worst.Boxes:g3}, score {worst.Scores:g3}");
        }
        finally
        {
            File.Delete(path);
        }
    }
}
