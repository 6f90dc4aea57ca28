using Osprey.Models;
using Osprey.Models.Building;
using Osprey.Onnx;
using Osprey.Tests.Models;
using static TorchSharp.torch;

namespace Osprey.Tests.Onnx;

/// <summary>Blocks and heads from outside the library export through <see cref="IOnnxBlock"/> and run in ONNX Runtime.</summary>
public class OnnxBlockTests
{
    // ONNX Runtime's output for each input against TorchSharp's: boxes relative to max(1, |value|), scores absolutely.
    private static void AssertRunsLikeTorchSharp(DetectionModel model, string path, params Tensor[] inputs)
    {
        using var ort = new OrtRunner(path);
        using var noGrad = no_grad();
        foreach (var input in inputs)
        {
            var ours = model.Predict(input);
            var theirs = ort.Run(input);
            Assert.Equal(ours.shape, theirs.shape);
            var diff = (ours - theirs).abs();
            var boxes = (diff.narrow(1, 0, 4) / ours.narrow(1, 0, 4).abs().clamp_min(1)).max().item<float>();
            var scores = diff.narrow(1, 4, ours.shape[1] - 4).max().item<float>();
            Assert.True(boxes < 1e-4 && scores < 1e-4, $"{string.Join("x", input.shape)}: box rel {boxes}, score {scores}");
        }
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void BlockOfAFamilyOutsideTheLibraryExports(bool dynamic)
    {
        manual_seed(5);
        using var model = new DetectionModel(ModelConfig.Parse(ToyFamily.Yaml, "toy.yaml"), ModuleRegistry.Default.With(new ToyFamily()));
        TestModels.RandomiseBatchNorms(model, seed: 5);
        string path = Path.Combine(Path.GetTempPath(), $"osprey-toy-{Guid.NewGuid():N}.onnx");
        try
        {
            var proto = OnnxExporter.Export(model, path, new OnnxExportOptions { Height = 64, Width = 96, Dynamic = dynamic });
            // ToyDown's own nodes: Conv with its weight and bias under its state-dict keys, then Relu.
            var conv = proto.Graph.Node.Single(n => n.Name == "/model.3/conv/Conv");
            Assert.Equal(new[] { "model.3.conv.weight", "model.3.conv.bias" }, conv.Input.Skip(1));
            Assert.Equal(new long[] { 2, 2 }, conv.Attribute.Single(a => a.Name == "strides").Ints);
            Assert.Equal(new[] { "/model.3/conv/Conv_output_0" }, proto.Graph.Node.Single(n => n.Name == "/model.3/Relu").Input);
            Assert.Equal(5, proto.Graph.Node.Count(n => n.OpType == "Relu"));
            manual_seed(6);
            AssertRunsLikeTorchSharp(model, path, dynamic
                ? new[] { rand(2, 3, 64, 96), rand(1, 3, 128, 32) }
                : new[] { rand(1, 3, 64, 96) });
        }
        finally
        {
            File.Delete(path);
        }
    }

    [Fact]
    public void OverriddenHeadBranchExportsWithItsGroups()
    {
        manual_seed(8);
        using var model = new DetectionModel(ModelConfig.Parse(TestModels.TinyYaml(nc: 5), "tiny.yaml"),
            ModuleRegistry.Default.With(new DepthwiseDetectFamily()));
        TestModels.RandomiseBatchNorms(model, seed: 8);
        string path = Path.Combine(Path.GetTempPath(), $"osprey-dw-{Guid.NewGuid():N}.onnx");
        try
        {
            var proto = OnnxExporter.Export(model, path, new OnnxExportOptions { Height = 96, Width = 128, Opset = 13 });
            // cv3.{level}.{j}.0 is the depthwise 3×3 Conv: one group per channel (16, 32, 64 at the tiny scale, then c3 = 16).
            long Group(string name) => proto.Graph.Node.Single(n => n.Name == name).Attribute.Single(a => a.Name == "group").I;
            Assert.Equal(16, Group("/model.22/cv3/0/0/0/conv/Conv"));
            Assert.Equal(64, Group("/model.22/cv3/2/0/0/conv/Conv"));
            Assert.Equal(16, Group("/model.22/cv3/2/1/0/conv/Conv"));
            Assert.Equal(1, Group("/model.22/cv3/2/1/1/conv/Conv"));
            Assert.Equal(new[] { "/model.22/cv3/0/1/1/act/Mul_output_0", "model.22.cv3.0.2.weight", "model.22.cv3.0.2.bias" },
                proto.Graph.Node.Single(n => n.Name == "/model.22/cv3.0/cv3.0.2/Conv").Input);
            manual_seed(9);
            AssertRunsLikeTorchSharp(model, path, rand(1, 3, 96, 128));
        }
        finally
        {
            File.Delete(path);
        }
    }

    [Fact]
    public void ModuleWithoutOnnxFormNamesItself()
    {
        var registry = ModuleRegistry.Default.With(new IdentityFamily());
        string yaml = TestModels.TinyYaml().Replace("[-1, 1, SPPF, [1024, 5]]", "[-1, 1, TestIdentity, []]");
        using var model = new DetectionModel(ModelConfig.Parse(yaml, "identity.yaml"), registry);
        var error = Assert.Throws<NotSupportedException>(() => OnnxExporter.Build(model, new OnnxExportOptions { Height = 64, Width = 64 }));
        Assert.Equal("ONNX export: model.9 (Identity) has no ONNX form (see IOnnxBlock).", error.Message);
    }

    private sealed class IdentityFamily : IModelFamily
    {
        public void Register(ModuleRegistry registry) =>
            registry.Register(c => new LayerBuild(nn.Identity(), c.InputChannel, "[]"), false, "TestIdentity");
    }
}
