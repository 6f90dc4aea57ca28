using Osprey.Models;
using Osprey.Models.Building;

namespace Osprey.Tests.Models;

public class ModelConfigTests
{
    [Theory]
    [InlineData("yolov8n.yaml", "n", 0.33, 0.25, 1024)]
    [InlineData("yolov8x.yaml", "x", 1.00, 1.25, 512)]
    [InlineData("some/dir/yolov8m.yaml", "m", 0.67, 0.75, 768)]
    public void EmbeddedConfigResolvesWithoutFiles(string name, string scale, double depth, double width, int maxChannels)
    {
        Assert.False(File.Exists(name));
        var config = ModelConfig.Load(name);
        Assert.Equal("embedded:yolov8.yaml", config.Source);
        Assert.Equal(scale, config.Scale);
        Assert.Equal(depth, config.Depth);
        Assert.Equal(width, config.Width);
        Assert.Equal(maxChannels, config.MaxChannels);
        Assert.Equal(80, config.Nc);
        Assert.Equal(23, config.Layers.Count);
        Assert.Equal("class79", config.Names[79]);
        Assert.Contains("yolov8.yaml", ModelConfig.EmbeddedNames);
    }

    [Theory]
    [InlineData("yolov8n.yaml", "n")]
    [InlineData("yolo11s-p2.yaml", "s")]
    [InlineData("YOLOv8L.yml", "l")]
    [InlineData("custom.yaml", null)]
    public void GuessesScaleLikeUltralytics(string name, string? scale) => Assert.Equal(scale, ModelConfig.GuessScale(name));

    [Fact]
    public void FileOnDiskWinsOverEmbedded()
    {
        string dir = TestModels.TempDir();
        try
        {
            string path = Path.Combine(dir, "yolov8n.yaml");
            File.WriteAllText(path, TestModels.TinyYaml(nc: 7).Replace("scale: t\n", ""));
            var config = ModelConfig.Load(path);
            Assert.Equal(path, config.Source);
            Assert.Equal(7, config.Nc);
            Assert.Equal("n", config.Scale); // from the file name
            Assert.Equal(0.25, config.Width);
        }
        finally
        {
            Directory.Delete(dir, true);
        }
    }

    [Fact]
    public void NcOverrideChangesClassBranch()
    {
        using var eighty = DetectionModel.FromYaml("yolov8n.yaml");
        using var three = ModelFactory.Create("yolov8n.yaml", nc: 3);
        Assert.Equal(3, three.Nc);
        Assert.Equal(new long[] { 3, 64, 1, 1 }, three.state_dict()["model.22.cv3.0.2.weight"].shape);
        Assert.Equal(new long[] { 80, 80, 1, 1 }, eighty.state_dict()["model.22.cv3.0.2.weight"].shape);

        // cv3 per level: Conv(x, c3, 3) + Conv(c3, c3, 3) (+2·c3 BN each) + Conv2d(c3, nc, 1) with bias;
        // c3 = max(64, min(nc, 100)): 80 for nc=80, 64 for nc=3; x = 64, 128, 256 for the n scale.
        static long ClassBranch(long c3, long nc) =>
            new long[] { 64, 128, 256 }.Sum(x => 9 * x * c3 + 2 * c3 + 9 * c3 * c3 + 2 * c3 + c3 * nc + nc);
        long difference = ClassBranch(80, 80) - ClassBranch(64, 3);
        Assert.Equal(145_767, difference);
        Assert.Equal(eighty.ParameterCount - difference, three.ParameterCount);
        Assert.Equal(3_011_433, three.ParameterCount);

        using var twenty = ModelFactory.Create("yolov8n.yaml", nc: 20); // c3 stays 64: only the output conv shrinks
        Assert.Equal(three.ParameterCount + (64 * 17 + 17) * 3, twenty.ParameterCount);
    }

    [Fact]
    public void UnknownModuleErrorNamesModuleAndFile()
    {
        string yaml = TestModels.TinyYaml().Replace("[-1, 1, SPPF, [1024, 5]]", "[-1, 1, FancyBlock, [1024, 5]]");
        var error = Assert.Throws<InvalidDataException>(() => new DetectionModel(ModelConfig.Parse(yaml, "bad.yaml")));
        Assert.Contains("bad.yaml", error.Message);
        Assert.Contains("layer 9", error.Message);
        Assert.Contains("'FancyBlock'", error.Message);
    }

    [Theory]
    [InlineData("nc: 80\nbackbone: [[-1, 1, Conv, [64, 3, 2]]\n", "invalid YAML")]
    [InlineData("nc: 80\nbackbone:\n  - [-1, 1, Conv, [64, 3, 2]]\n", "'head'")]
    [InlineData("nc: eighty\nbackbone: []\nhead: []\n", "nc: expected an integer")]
    [InlineData("nc: 80\nbackbone:\n  - [-1, 1, Conv]\nhead: []\n", "layer 0")]
    [InlineData("nc: 80\nbackbone:\n  - [-1, 1, Conv, [sixty, 3, 2]]\nhead: []\n", "arg 0 must be an integer")]
    [InlineData("nc: 80\nbackbone:\n  - [-1, 1, Conv, [64, 3, 2]]\n  - [[-1, 5], 1, Concat, [1]]\nhead: []\n", "'from' 5")]
    public void BadYamlGivesInvalidDataNamingFile(string yaml, string problem)
    {
        var error = Assert.Throws<InvalidDataException>(() => new DetectionModel(ModelConfig.Parse(yaml, "broken.yaml")));
        Assert.StartsWith("broken.yaml: ", error.Message);
        Assert.Contains(problem, error.Message);
    }

    [Fact]
    public void UnknownNameIsFileNotFound() =>
        Assert.Throws<FileNotFoundException>(() => ModelConfig.Load("yolov99z.yaml"));

    [Fact]
    public void PinnedYamlRebuildsSameModel()
    {
        var config = ModelConfig.Load("yolov8s.yaml", nc: 4);
        var pinned = ModelConfig.Parse(config.ToPinnedYaml(), "pinned.yaml");
        Assert.Equal("s", pinned.Scale);
        Assert.Equal(4, pinned.Nc);
        Assert.Equal(config.Layers.Count, pinned.Layers.Count);
    }

    [Fact]
    public void RegistryAcceptsBothUpsampleNamesAndCustomModules()
    {
        var registry = ModuleRegistry.Default;
        Assert.True(registry.TryGet("nn.Upsample", out _, out _));
        Assert.True(registry.TryGet("Upsample", out _, out _));
        Assert.True(registry.TryGet("C2f", out _, out bool consumesRepeats) && consumesRepeats);

        // A new block plugs in by name; scaled repeats > 1 (6 × 0.33 → 2) stack it in a Sequential like Ultralytics.
        var custom = registry.With(new IdentityFamily());
        string yaml = TestModels.TinyYaml().Replace("[-1, 1, SPPF, [1024, 5]]", "[-1, 6, TestIdentity, []]");
        using var model = new DetectionModel(ModelConfig.Parse(yaml, "custom.yaml"), custom);
        Assert.Equal("TestIdentity", model.Summary()[9].Module);
        Assert.Equal(2, model.Summary()[9].Repeats);
    }

    private sealed class IdentityFamily : IModelFamily
    {
        public void Register(ModuleRegistry registry) =>
            registry.Register(c => new LayerBuild(TorchSharp.torch.nn.Identity(), c.InputChannel, "[]"), false, "TestIdentity");
    }
}
