using Google.Protobuf;
using Microsoft.ML.OnnxRuntime;
using Microsoft.ML.OnnxRuntime.Tensors;
using Onnx;
using Osprey.Models;
using Osprey.Onnx;
using Osprey.Tests.Models;
using static TorchSharp.torch;

namespace Osprey.Tests.Onnx;

/// <summary>
/// <c>half=True</c>: on the CPU the export warns as Ultralytics does and writes the fp32 graph; the float16 graph a CUDA
/// export writes (fp16 initializers, float16 <c>images</c> and <c>output0</c>) runs in ONNX Runtime's CPU provider and
/// agrees with the fp32 export within float16 precision.
/// </summary>
public class OnnxHalfExportTests
{
    private static string TinyWeights(string dir)
    {
        using var model = TestModels.Tiny(nc: 3);
        TestModels.RandomiseBatchNorms(model, seed: 7);
        string path = Path.Combine(dir, "tiny.safetensors");
        ModelWeights.Save(model, path);
        return path;
    }

    private static Dictionary<string, string> MetadataWithoutDate(ModelProto proto) =>
        proto.MetadataProps.Where(p => p.Key != "date").ToDictionary(p => p.Key, p => p.Value);

    [Fact]
    public void HalfOnCpuWarnsAndWritesTheFp32Export()
    {
        string dir = TestModels.TempDir();
        try
        {
            string weights = TinyWeights(dir);
            string onnx = Path.Combine(dir, "tiny.onnx");
            var (code, output, err) = Osprey.Tests.Cli.CliAppTests.Run("export", $"model={weights}", "imgsz=64", "half=True", "device=cpu");
            Assert.Equal("", err);
            Assert.Equal(0, code);
            Assert.Contains("WARNING ⚠️ half=True only compatible with GPU export, i.e. use device=0", output);
            Assert.Contains("opset 17, input (1, 3, 64, 64)", output);
            var half = ModelProto.Parser.ParseFrom(File.ReadAllBytes(onnx));

            (code, output, err) = Osprey.Tests.Cli.CliAppTests.Run("export", $"model={weights}", "imgsz=64");
            Assert.Equal(0, code);
            Assert.DoesNotContain("WARNING", output);
            var full = ModelProto.Parser.ParseFrom(File.ReadAllBytes(onnx));

            Assert.Equal(OnnxTensors.DataType.Float, half.Graph.Input.Single().Type.TensorType.ElemType);
            Assert.All(half.Graph.Initializer, t => Assert.NotEqual(OnnxTensors.DataType.Float16, t.DataType));
            Assert.Equal(full.Graph, half.Graph); // node for node, byte for byte
            Assert.Equal(MetadataWithoutDate(full), MetadataWithoutDate(half));
            Assert.Contains("'half': False", MetadataWithoutDate(half)["args"]);
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    [Fact]
    public void HalfOnCudaKeepsHalf()
    {
        var options = new OnnxExportOptions { Half = true };
        Assert.Same(options, OnnxExporter.ForDevice(options, cuda: true, out var warning));
        Assert.Null(warning);
        Assert.False(OnnxExporter.ForDevice(options, cuda: false, out warning).Half);
        Assert.Equal(OnnxExporter.HalfOnCpuWarning, warning);
    }

    [Theory]
    [InlineData(false, 17)]
    [InlineData(true, 17)]
    [InlineData(false, 11)]
    public void Fp16GraphAgreesWithFp32WithinHalfPrecision(bool dynamic, int opset)
    {
        using var model = TestModels.Tiny(nc: 4);
        TestModels.RandomiseBatchNorms(model, seed: 5);
        string dir = TestModels.TempDir();
        try
        {
            var options = new OnnxExportOptions { Height = 96, Width = 96, Dynamic = dynamic, Opset = opset };
            string fullPath = Path.Combine(dir, "full.onnx"), halfPath = Path.Combine(dir, "half.onnx");
            var full = OnnxExporter.Export(model, fullPath, options);
            var half = OnnxExporter.Export(model, halfPath, options with { Half = true });

            Assert.Equal(OnnxTensors.DataType.Float16, half.Graph.Input.Single(i => i.Name == "images").Type.TensorType.ElemType);
            Assert.Equal(OnnxTensors.DataType.Float16, half.Graph.Output.Single(o => o.Name == "output0").Type.TensorType.ElemType);
            Assert.Contains("'half': True", half.MetadataProps.Single(p => p.Key == "args").Value);
            // every float initializer is the fp32 one rounded to float16, except Resize's scales/roi (float by the spec)
            var fullInit = full.Graph.Initializer.ToDictionary(t => t.Name);
            int halves = 0;
            foreach (var t in half.Graph.Initializer)
            {
                var reference = fullInit[t.Name];
                if (reference.DataType != OnnxTensors.DataType.Float) { Assert.Equal(reference, t); continue; }
                if (t.Name.EndsWith("/scales", StringComparison.Ordinal) || t.Name.EndsWith("/roi", StringComparison.Ordinal))
                {
                    Assert.Equal(reference, t);
                    continue;
                }
                Assert.Equal(OnnxTensors.DataType.Float16, t.DataType);
                var expected = reference.RawData.ToByteArray().Chunk(4).Select(b => BitConverter.ToSingle(b)).Select(v => (Half)v);
                var actual = t.RawData.ToByteArray().Chunk(2).Select(b => BitConverter.ToHalf(b));
                Assert.Equal(expected, actual);
                halves++;
            }
            Assert.True(halves > 50, $"{halves} float16 initializers");

            using var fullRunner = new OrtRunner(fullPath);
            using var session = new InferenceSession(halfPath);
            using var noGrad = no_grad();
            manual_seed(11);
            var input = rand(dynamic ? 2 : 1, 3, 96, 96);
            var reference32 = fullRunner.Run(input);
            var values = input.data<float>().ToArray().Select(v => (Float16)v).ToArray();
            var tensor16 = new DenseTensor<Float16>(values, input.shape.Select(d => (int)d).ToArray());
            using var results = session.Run(new[] { NamedOnnxValue.CreateFromTensor("images", tensor16) });
            var output = results.First().AsTensor<Float16>();
            Assert.Equal(reference32.shape, output.Dimensions.ToArray().Select(d => (long)d).ToArray());
            var ours = tensor(output.ToArray().Select(h => h.ToFloat()).ToArray()).reshape(reference32.shape);
            var diff = (ours - reference32).abs();
            float boxes = (diff.narrow(1, 0, 4) / reference32.narrow(1, 0, 4).abs().clamp_min(1)).max().item<float>();
            float scores = diff.narrow(1, 4, 4).max().item<float>();
            Assert.True(boxes < 1e-2 && scores < 1e-3, $"box rel {boxes}, score {scores}");
            Assert.True(diff.max().item<float>() > 0, "the fp16 graph should not be bit-identical to fp32");
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }
}
