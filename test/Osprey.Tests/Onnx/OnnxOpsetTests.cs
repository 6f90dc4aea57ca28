using Onnx;
using Osprey.Models;
using Osprey.Onnx;
using Osprey.Tests.Models;
using static TorchSharp.torch;

namespace Osprey.Tests.Onnx;

/// <summary>
/// Every supported opset runs in ONNX Runtime and gives TorchSharp's output (1e-4), static and dynamic: below 13 the
/// graph uses the attribute forms of Split/Unsqueeze, a Resize roi input and Softmax over the last axis (2-D semantics).
/// </summary>
public class OnnxOpsetTests
{
    [Theory]
    [InlineData(11, false)]
    [InlineData(11, true)]
    [InlineData(12, false)]
    [InlineData(12, true)]
    [InlineData(13, true)]
    [InlineData(21, false)]
    public void OpsetMatchesTorchSharp(int opset, bool dynamic)
    {
        using var model = TestModels.Tiny(nc: 5);
        TestModels.RandomiseBatchNorms(model, seed: opset);
        string path = Path.Combine(Path.GetTempPath(), $"osprey-opset{opset}-{Guid.NewGuid():N}.onnx");
        try
        {
            var proto = OnnxExporter.Export(model, path, new OnnxExportOptions { Height = 96, Width = 128, Opset = opset, Dynamic = dynamic });
            Assert.Equal(opset, proto.OpsetImport.Single().Version);
            var splits = proto.Graph.Node.Where(n => n.OpType == "Split").ToList();
            Assert.NotEmpty(splits);
            // below 13 the sizes are an attribute and the node has one input; from 13 an int64 input
            Assert.All(splits, n => Assert.Equal(opset < 13 ? 1 : 2, n.Input.Count));
            Assert.All(splits, n => Assert.Equal(opset < 13, n.Attribute.Any(a => a.Name == "split")));
            using var ort = new OrtRunner(path);
            using var noGrad = no_grad();
            manual_seed(opset);
            var inputs = dynamic ? new[] { rand(2, 3, 64, 96), rand(1, 3, 128, 64) } : new[] { rand(1, 3, 96, 128) };
            foreach (var input in inputs)
            {
                var ours = model.Predict(input);
                var theirs = ort.Run(input);
                Assert.Equal(ours.shape, theirs.shape);
                var boxes = ((ours - theirs).abs().narrow(1, 0, 4) / ours.narrow(1, 0, 4).abs().clamp_min(1)).max().item<float>();
                var scores = (ours - theirs).abs().narrow(1, 4, 5).max().item<float>();
                Assert.True(boxes < 1e-4 && scores < 1e-4, $"opset {opset}: box rel {boxes}, score {scores}");
            }
        }
        finally
        {
            File.Delete(path);
        }
    }

    [Theory]
    [InlineData(10)]
    [InlineData(22)]
    public void UnsupportedOpsetNamesTheRange(int opset)
    {
        using var model = TestModels.Tiny(nc: 2);
        var e = Assert.Throws<ArgumentException>(() => OnnxExporter.Build(model, new OnnxExportOptions { Height = 64, Width = 64, Opset = opset }));
        Assert.Equal($"opset={opset}: Osprey exports ONNX opsets 11 … 21.", e.Message);
        var (code, _, err) = Osprey.Tests.Cli.CliAppTests.Run("export", "model=yolov8n.yaml", $"opset={opset}");
        Assert.Equal(Osprey.Cli.CliApp.UsageError, code);
        Assert.Equal($"osprey: error: opset={opset}: Osprey exports ONNX opsets 11 … 21.", err.TrimEnd());
    }
}
