using Osprey.Models;
using Osprey.Models.Heads;
using TorchSharp.PyBridge;
using static TorchSharp.torch;

namespace Osprey.Tests.Models;

/// <summary>
/// YOLO11 and YOLOv10 from state dicts: a PyTorch state_dict (<c>.pt</c>, written by PyBridge as torch.save writes one)
/// or safetensors, named like Ultralytics' weights and without a sidecar, rebuilds the embedded config its name says and
/// predicts exactly as the source model.
/// </summary>
public class FamilyWeightsTests
{
    [Theory]
    [InlineData("yolo11n", ".pt", "model.10.m.0.attn.qkv.conv.weight")]
    [InlineData("yolo11n", ".safetensors", "model.23.cv3.0.0.0.conv.weight")]
    [InlineData("yolov10n", ".pt", "model.23.one2one_cv3.0.0.0.conv.weight")]
    [InlineData("yolov10n", ".safetensors", "model.22.m.0.cv1.2.conv1.conv.weight")]
    public void StateDictNamedLikeUltralyticsRebuildsTheFamilyAndPredictsAlike(string name, string extension, string key)
    {
        string dir = TestModels.TempDir();
        try
        {
            manual_seed(31);
            using var source = DetectionModel.FromYaml(name + ".yaml");
            TestModels.RandomiseBatchNorms(source, seed: 31);
            Assert.Contains(key, source.state_dict().Keys);
            string path = Path.Combine(dir, name + extension);
            if (extension == ".pt") source.save_py(path);
            else source.save_safetensors(path);
            Assert.False(File.Exists(ModelWeights.SidecarPath(path)));

            using var loaded = ModelFactory.Create(path);
            Assert.Equal(source.ParameterCount, loaded.ParameterCount);
            Assert.Equal(name.StartsWith("yolov10", StringComparison.Ordinal), loaded.Head is V10Detect);
            Assert.True(loaded.state_dict()[key].SameAs(source.state_dict()[key]), key);
            source.eval();
            loaded.eval();
            using var scope = NewDisposeScope();
            using var noGrad = no_grad();
            var input = rand(1, 3, 96, 128);
            Assert.True(source.Predict(input).equal(loaded.Predict(input)).all().item<bool>(), $"{name}{extension}: predictions differ");
        }
        finally
        {
            Directory.Delete(dir, true);
        }
    }
}
