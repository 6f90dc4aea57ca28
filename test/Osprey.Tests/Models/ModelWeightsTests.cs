using Osprey.Models;
using TorchSharp.PyBridge;
using static TorchSharp.torch;

namespace Osprey.Tests.Models;

public class ModelWeightsTests
{
    [Theory]
    [InlineData("weights.safetensors")]
    [InlineData("weights.pt")]
    public void RoundTripIsBitExact(string fileName)
    {
        string dir = TestModels.TempDir();
        try
        {
            string path = Path.Combine(dir, fileName);
            using var source = TestModels.Tiny();
            TestModels.RandomiseBatchNorms(source, seed: 3);
            ModelWeights.Save(source, path);
            Assert.True(File.Exists(ModelWeights.SidecarPath(path)));

            using var target = TestModels.Tiny();
            var sourceState = source.state_dict();
            Assert.Contains(target.state_dict(), kv => !kv.Value.SameAs(sourceState[kv.Key]));
            ModelWeights.Load(target, path);
            var targetState = target.state_dict();
            Assert.Equal(sourceState.Keys.OrderBy(k => k), targetState.Keys.OrderBy(k => k));
            foreach (var (key, tensor) in sourceState)
            {
                Assert.Equal(tensor.dtype, targetState[key].dtype);
                Assert.True(tensor.SameAs(targetState[key]), $"{key} differs after {fileName} round trip");
            }
            Assert.Equal(ScalarType.Int64, targetState["model.0.bn.num_batches_tracked"].dtype);
        }
        finally
        {
            Directory.Delete(dir, true);
        }
    }

    [Fact]
    public void PyBridgeFilesLoadToo()
    {
        // Files written by PyBridge directly (as a PyTorch state_dict / safetensors) load through ModelWeights.
        string dir = TestModels.TempDir();
        try
        {
            using var source = TestModels.Tiny();
            source.save_py(Path.Combine(dir, "a.pt"));
            source.save_safetensors(Path.Combine(dir, "a.safetensors"));
            foreach (var file in new[] { "a.pt", "a.safetensors" })
            {
                using var target = TestModels.Tiny();
                ModelWeights.Load(target, Path.Combine(dir, file));
                Assert.True(target.state_dict()["model.22.cv3.0.2.weight"].SameAs(source.state_dict()["model.22.cv3.0.2.weight"]));
            }
            // …and ours load through PyBridge; the safetensors bytes are PyBridge's own (written from CPU copies, which on
            // the CPU are the tensors themselves; a .pt zip differs in its entries' metadata).
            ModelWeights.Save(source, Path.Combine(dir, "b.safetensors"), writeSidecar: false);
            Assert.True(File.ReadAllBytes(Path.Combine(dir, "a.safetensors")).AsSpan().SequenceEqual(File.ReadAllBytes(Path.Combine(dir, "b.safetensors"))));
            using var viaPyBridge = TestModels.Tiny();
            viaPyBridge.load_safetensors(Path.Combine(dir, "b.safetensors"));
            Assert.True(viaPyBridge.state_dict()["model.0.conv.weight"].SameAs(source.state_dict()["model.0.conv.weight"]));
        }
        finally
        {
            Directory.Delete(dir, true);
        }
    }

    [Theory]
    [InlineData("w.safetensors")]
    [InlineData("w.pt")]
    public void ShapeMismatchNamesFileAndKeys(string fileName)
    {
        string dir = TestModels.TempDir();
        try
        {
            string path = Path.Combine(dir, fileName);
            using var eighty = TestModels.Tiny(nc: 80);
            ModelWeights.Save(eighty, path);
            using var three = TestModels.Tiny(nc: 3);
            var error = Assert.Throws<InvalidDataException>(() => ModelWeights.Load(three, path));
            Assert.Contains(path, error.Message);
            Assert.Contains("shape mismatches", error.Message);
            Assert.Contains("36 shape mismatches: model.22.cv3.0.0.conv.weight: file [80, 16, 3, 3] vs model [16, 16, 3, 3]", error.Message);
            Assert.Contains("model.22.cv3.0.2.weight: file [80, 80, 1, 1] vs model [3, 16, 1, 1]", error.Message);
            Assert.DoesNotContain("missing keys", error.Message);

            // Transfer loading keeps what still fits: c3 = max(16, min(nc, 100)) shrinks 80 → 16, so per level the
            // two class Convs (weight + 4 BN tensors; num_batches_tracked still fits) and the output conv (2) differ.
            int copied = ModelWeights.LoadMatching(three, path);
            Assert.Equal(three.state_dict().Count - 3 * (5 + 5 + 2), copied);
        }
        finally
        {
            Directory.Delete(dir, true);
        }
    }

    [Fact]
    public void MissingAndUnexpectedKeysAreListed()
    {
        string dir = TestModels.TempDir();
        try
        {
            using var model = TestModels.Tiny();
            string partial = Path.Combine(dir, "partial.safetensors");
            model.save_safetensors(partial, skip: new[] { "model.0.bn.running_mean", "model.22.dfl.conv.weight" });
            var missing = Assert.Throws<InvalidDataException>(() => ModelWeights.Load(model, partial));
            Assert.Contains(partial, missing.Message);
            Assert.Contains("2 missing keys: ", missing.Message);
            Assert.Contains("model.0.bn.running_mean", missing.Message);
            Assert.Contains("model.22.dfl.conv.weight", missing.Message);

            using var fused = TestModels.Tiny();
            fused.Fuse();
            string fusedPath = Path.Combine(dir, "fused.pt");
            ModelWeights.Save(fused, fusedPath);
            var unexpected = Assert.Throws<InvalidDataException>(() => ModelWeights.Load(model, fusedPath));
            Assert.Contains("unexpected keys: model.0.conv.bias", unexpected.Message);
            Assert.Contains("missing keys: model.0.bn.weight", unexpected.Message);

            Assert.Throws<FileNotFoundException>(() => ModelWeights.Load(model, Path.Combine(dir, "nope.safetensors")));
            File.WriteAllText(Path.Combine(dir, "junk.safetensors"), "not a safetensors file at all");
            var junk = Assert.Throws<InvalidDataException>(() => ModelWeights.Load(model, Path.Combine(dir, "junk.safetensors")));
            Assert.Contains("junk.safetensors", junk.Message);
        }
        finally
        {
            Directory.Delete(dir, true);
        }
    }

    [Fact]
    public void FactoryRebuildsFromWeightsAndSidecar()
    {
        string dir = TestModels.TempDir();
        try
        {
            string path = Path.Combine(dir, "best.safetensors");
            using var source = TestModels.Tiny(nc: 5);
            TestModels.RandomiseBatchNorms(source, seed: 9);
            ModelWeights.Save(source, path);

            using var loaded = ModelFactory.Create(path);
            Assert.Equal(5, loaded.Nc);
            Assert.Equal("t", loaded.Scale);
            Assert.Equal(source.ParameterCount, loaded.ParameterCount);
            foreach (var (key, tensor) in source.state_dict())
                Assert.True(tensor.SameAs(loaded.state_dict()[key]), key);

            // New nc: rebuilt with 2 classes, everything but the class outputs transferred.
            using var retargeted = ModelFactory.Create(path, nc: 2);
            Assert.Equal(2, retargeted.Nc);
            Assert.True(retargeted.state_dict()["model.22.cv3.0.1.conv.weight"].SameAs(source.state_dict()["model.22.cv3.0.1.conv.weight"]));

            // Explicit yaml argument wins over the sidecar.
            File.WriteAllText(Path.Combine(dir, "arch.yaml"), TestModels.TinyYaml(nc: 5));
            using var explicitYaml = ModelFactory.Create(path, yaml: Path.Combine(dir, "arch.yaml"));
            Assert.Equal(source.ParameterCount, explicitYaml.ParameterCount);

            File.Delete(ModelWeights.SidecarPath(path));
            Assert.Throws<FileNotFoundException>(() => ModelFactory.Create(path));
            Assert.Throws<ArgumentException>(() => ModelFactory.Create(Path.Combine(dir, "model.bin")));
            Assert.Throws<FileNotFoundException>(() => ModelFactory.Create(Path.Combine(dir, "model.onnx")));
        }
        finally
        {
            Directory.Delete(dir, true);
        }
    }
}
