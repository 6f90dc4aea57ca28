using Osprey.Models;
using Osprey.Models.Blocks;
using Osprey.Models.Building;
using Osprey.Models.Heads;
using static TorchSharp.torch;

namespace Osprey.Tests.Models;

/// <summary>YOLOv10's blocks (SCDown, CIB, C2fCIB, RepVGGDW, PSA) on their own and in yolov10n's layout with the v8 Detect.</summary>
public class YoloV10BlockTests
{
    /// <summary>yolov10n.yaml with its v10Detect row replaced by Detect (v10Detect is the head's own work).</summary>
    public static string V10nWithDetect(string scale = "n") =>
        ModelConfig.Load($"yolov10{scale}.yaml").Text.Replace("v10Detect, [nc]]", "Detect, [nc]]");

    static long Count(nn.Module module) => module.parameters().Sum(p => p.numel());

    [Theory]
    [InlineData("yolov10n.yaml", "n", 0.33, 0.25, 1024)]
    [InlineData("yolov10s.yaml", "s", 0.33, 0.50, 1024)]
    [InlineData("yolov10m.yaml", "m", 0.67, 0.75, 768)]
    [InlineData("yolov10b.yaml", "b", 0.67, 1.00, 512)]
    [InlineData("yolov10l.yaml", "l", 1.00, 1.00, 512)]
    [InlineData("yolov10x.yaml", "x", 1.00, 1.25, 512)]
    public void EmbeddedV10ConfigsResolveByName(string name, string scale, double depth, double width, int maxChannels)
    {
        var config = ModelConfig.Load(name);
        Assert.Equal($"embedded:{name}", config.Source);
        Assert.Equal((scale, depth, width, maxChannels), (config.Scale, config.Depth, config.Width, config.MaxChannels));
        Assert.Equal(24, config.Layers.Count);
        Assert.Equal("v10Detect", config.Layers[23].Module);
        Assert.Equal(("YOLOv10", scale, name), Osprey.Models.Families.ModelFamilyNames.FromDescription($"Ultralytics YOLOv10{scale} model trained on coco.yaml"));
    }

    [Fact]
    public void BlockParameterCountsByHand()
    {
        // SCDown(64, 128, 3, 2): Conv(64, 128, 1) 8192 + 256, Conv(128, 128, 3, g=128) 1152 + 256 (Ultralytics yolov10n layer 5).
        using var scDown = new SCDown(64, 128, 3, 2);
        Assert.Equal(9_856, Count(scDown));
        // RepVGGDW(256): 7×7 depthwise 12544 + 512, 3×3 depthwise 2304 + 512.
        using var rep = new RepVGGDW(256);
        Assert.Equal(15_872, Count(rep));
        // CIB(128, 128, e=1, lk): Conv(128, 128, 3, g=128) 1408, Conv(128, 256, 1) 33280, RepVGGDW(256) 15872,
        // Conv(256, 128, 1) 33024, Conv(128, 128, 3, g=128) 1408; without lk the third is Conv(256, 256, 3, g=256) 2816.
        using var cibLarge = new CIB(128, 128, true, 1.0, largeKernel: true);
        using var cib = new CIB(128, 128, true, 1.0);
        Assert.Equal(84_992, Count(cibLarge));
        Assert.Equal(84_992 - 15_872 + 2_816, Count(cib));
        // C2fCIB(384, 256, n=1, True, True): cv1 Conv(384, 256, 1) 98304 + 512, cv2 Conv(384, 256, 1), one CIB(128) (yolov10n layer 22).
        using var c2fCib = new C2fCIB(384, 256, 1, true, true);
        Assert.Equal(282_624, Count(c2fCib));
        Assert.Contains("m.0.cv1.2.conv1.conv.weight", c2fCib.state_dict().Keys);
        Assert.Contains("m.0.cv1.4.bn.running_var", c2fCib.state_dict().Keys);

        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        Assert.Equal(new long[] { 2, 128, 4, 5 }, scDown.call(randn(2, 64, 8, 9)).shape);
        Assert.Equal(new long[] { 2, 128, 8, 9 }, cibLarge.call(randn(2, 128, 8, 9)).shape);
        Assert.Equal(new long[] { 1, 256, 8, 9 }, c2fCib.call(randn(1, 384, 8, 9)).shape);
    }

    [Fact]
    public void RepVggDwFuseKeepsTheOutput()
    {
        manual_seed(11);
        using var block = new RepVGGDW(32);
        using (no_grad())
            foreach (var (name, tensor) in block.state_dict())
                if (name.EndsWith("running_var", StringComparison.Ordinal)) tensor.copy_(rand(tensor.shape) + 0.5);
                else if (name.EndsWith("running_mean", StringComparison.Ordinal) || name.EndsWith("bn.bias", StringComparison.Ordinal))
                    tensor.copy_(randn(tensor.shape) * 0.3);
        block.eval();
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        var x = randn(2, 32, 11, 13);
        var before = block.call(x);
        block.Fuse();
        Assert.True(block.IsFused);
        Assert.Equal(new[] { "conv.conv.weight", "conv.conv.bias" }, block.state_dict().Keys);
        Assert.Equal(32 * 49 + 32, Count(block));
        var after = block.call(x);
        double worst = (after - before).abs().max().item<float>(), scale = before.abs().max().item<float>();
        Assert.True(worst <= 1e-5 * Math.Max(1, scale), $"fused output differs by {worst} (max |y| {scale})");
    }

    [Fact]
    public void V10nLayoutMatchesUltralyticsTable()
    {
        // Ultralytics' yolov10n table: every row but the head (v10Detect here replaced by Detect, which parse_model builds
        // with legacy=False because of the C2fCIB row).
        long[] expected = { 464, 4672, 7360, 18560, 49664, 9856, 197632, 36096, 460288, 164608, 249728, 0, 0, 148224, 0, 0,
            37248, 36992, 0, 123648, 18048, 0, 282624 };
        using var model = new DetectionModel(ModelConfig.Parse(V10nWithDetect(), "yolov10n.yaml"));
        var rows = model.Summary();
        Assert.Equal(expected, rows.Take(23).Select(r => r.Parameters));
        Assert.Equal("[64, 128, 3, 2]", rows[5].Arguments);
        Assert.Equal("[256, 256]", rows[10].Arguments);
        Assert.Equal("[384, 256, 1, True, True]", rows[22].Arguments);
        Assert.IsType<Yolo11Detect>(model.Head);
        Assert.Equal(464_912, rows[23].Parameters);

        // The real yolov10n (v10Detect, both branches): Ultralytics' "YOLOv10n summary: 385 layers, 2,775,520 parameters".
        using var real = DetectionModel.FromYaml("yolov10n.yaml");
        var realRows = real.Summary();
        Assert.Equal(expected, realRows.Take(23).Select(r => r.Parameters));
        Assert.Equal(2_775_520, real.ParameterCount);
    }

    /// <summary>
    /// The fused models' parameters (Conv+BN merged, RepVGGDW merged, the one-to-many branches removed: what
    /// <c>model.fuse()</c> leaves) in millions, as Ultralytics' docs/en/models/yolov10.md tabulates them ("Params and FLOPs
    /// values are for the fused model"): n 2.3, s 7.2, m 15.4, l 24.4, x 29.5; b from the YOLOv10 paper's Table 1
    /// (arXiv 2405.14458, 19.1), which the docs' table omits.
    /// </summary>
    [Theory]
    [InlineData("n", 2.3)]
    [InlineData("s", 7.2)]
    [InlineData("m", 15.4)]
    [InlineData("b", 19.1)]
    [InlineData("l", 24.4)]
    [InlineData("x", 29.5)]
    public void FusedParameterCountsMatchUltralyticsDocs(string scale, double millions)
    {
        using var model = DetectionModel.FromYaml($"yolov10{scale}.yaml");
        model.eval();
        model.Fuse();
        Assert.Equal(millions, Math.Round(model.ParameterCount / 1e6, 1));
    }

    [Fact]
    public void ModelFuseReachesRepVggDw()
    {
        manual_seed(13);
        using var model = new DetectionModel(ModelConfig.Parse(V10nWithDetect(), "yolov10n.yaml", nc: 3));
        TestModels.RandomiseBatchNorms(model, seed: 13);
        model.eval();
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        var x = rand(1, 3, 64, 96);
        var before = model.Predict(x);
        long unfused = model.ParameterCount;
        model.Fuse();
        var blocks = model.modules().OfType<RepVGGDW>().ToList();
        Assert.Single(blocks);                                   // layer 22's one CIB (lk=True)
        Assert.All(blocks, b => Assert.True(b.IsFused));
        Assert.DoesNotContain(model.state_dict().Keys, k => k.Contains("conv1", StringComparison.Ordinal));
        Assert.True(model.ParameterCount < unfused);
        var after = model.Predict(x);
        var boxes = ((after - before).narrow(1, 0, 4).abs() / before.narrow(1, 0, 4).abs().clamp_min(1)).max().item<float>();
        var scores = (after - before).narrow(1, 4, 3).abs().max().item<float>();
        Assert.True(boxes < 1e-4 && scores < 1e-5, $"box rel {boxes}, score {scores}");
    }
}
