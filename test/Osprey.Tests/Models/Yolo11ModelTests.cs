using Osprey.Models;
using Osprey.Models.Blocks;
using Osprey.Models.Building;
using Osprey.Models.Heads;
using static TorchSharp.torch;

namespace Osprey.Tests.Models;

/// <summary>YOLO11 built from the embedded yolo11.yaml: Ultralytics' layer tables, state-dict keys and parse_model rules.</summary>
public class Yolo11ModelTests
{
    [Fact]
    public void Yolo11nLayerTableMatchesUltralytics()
    {
        // Ultralytics' printed yolo11n table (8.3.x, nc=80): params and arguments of every row.
        (long Params, string Module, string Args)[] expected =
        {
            (464, "Conv", "[3, 16, 3, 2]"), (4672, "Conv", "[16, 32, 3, 2]"), (6640, "C3k2", "[32, 64, 1, False, 0.25]"),
            (36992, "Conv", "[64, 64, 3, 2]"), (26080, "C3k2", "[64, 128, 1, False, 0.25]"), (147712, "Conv", "[128, 128, 3, 2]"),
            (87040, "C3k2", "[128, 128, 1, True]"), (295424, "Conv", "[128, 256, 3, 2]"), (346112, "C3k2", "[256, 256, 1, True]"),
            (164608, "SPPF", "[256, 256, 5]"), (249728, "C2PSA", "[256, 256, 1]"), (0, "nn.Upsample", "[None, 2, 'nearest']"),
            (0, "Concat", "[1]"), (111296, "C3k2", "[384, 128, 1, False]"), (0, "nn.Upsample", "[None, 2, 'nearest']"),
            (0, "Concat", "[1]"), (32096, "C3k2", "[256, 64, 1, False]"), (36992, "Conv", "[64, 64, 3, 2]"),
            (0, "Concat", "[1]"), (86720, "C3k2", "[192, 128, 1, False]"), (147712, "Conv", "[128, 128, 3, 2]"),
            (0, "Concat", "[1]"), (378880, "C3k2", "[384, 256, 1, True]"), (464912, "Detect", "[80, [64, 128, 256]]"),
        };
        using var model = DetectionModel.FromYaml("yolo11n.yaml");
        var rows = model.Summary();
        Assert.Equal(expected, rows.Select(r => (r.Parameters, r.Module, r.Arguments)));
        Assert.Equal(new[] { "-1", "[-1, 6]", "[-1, 4]", "[-1, 13]", "[-1, 10]", "[16, 19, 22]" }, rows.Select(r => r.From).Distinct());
        Assert.Equal(2_624_080, model.ParameterCount);
        Assert.IsType<Yolo11Detect>(model.Head);
        Assert.Equal("embedded:yolo11.yaml", model.Config.Source);
        Assert.Equal("n", model.Scale);
    }

    [Fact]
    public void ScaleMForcesC3kAsParseModelDoes()
    {
        // Ultralytics' yolo11m table: the YAML's False became True ("C3k2 [128, 256, 1, True, 0.25]", 111,872 params).
        using var model = DetectionModel.FromYaml("yolo11m.yaml");
        var rows = model.Summary();
        Assert.Equal((111_872L, "[128, 256, 1, True, 0.25]"), (rows[2].Parameters, rows[2].Arguments));
        Assert.Equal((1_642_496L, "[1024, 512, 1, True]"), (rows[13].Parameters, rows[13].Arguments));
        Assert.Equal((542_720L, "[1024, 256, 1, True]"), (rows[16].Parameters, rows[16].Arguments));
        Assert.Equal((1_511_424L, "[768, 512, 1, True]"), (rows[19].Parameters, rows[19].Arguments));
        Assert.Equal(990_976L, rows[10].Parameters);
        Assert.All(model.Layers.Select(l => l.Module).OfType<C3k2>(), block => Assert.True(block.UsesC3k));
        using var small = DetectionModel.FromYaml("yolo11s.yaml");
        Assert.False(((C3k2)small.Layers[2].Module).UsesC3k);
        Assert.True(((C3k2)small.Layers[6].Module).UsesC3k);
    }

    [Fact]
    public void StateDictKeysAreUltralytics()
    {
        using var model = DetectionModel.FromYaml("yolo11n.yaml");
        var state = model.state_dict();
        // Ultralytics: "Transferred 499/499 items from pretrained weights" for yolo11n (BN's num_batches_tracked included).
        Assert.Equal(499, state.Count);
        (string Key, long[] Shape)[] expected =
        {
            ("model.2.cv1.conv.weight", new long[] { 32, 32, 1, 1 }),            // C3k2 cv1 → 2c, c = int(64·0.25) = 16
            ("model.2.m.0.cv1.conv.weight", new long[] { 8, 16, 3, 3 }),         // Bottleneck(c, c) with e = 0.5
            ("model.8.m.0.cv3.conv.weight", new long[] { 128, 128, 1, 1 }),      // C3k (c3k=True): cv3 = Conv(2c_, c, 1)
            ("model.8.m.0.m.1.cv2.conv.weight", new long[] { 64, 64, 3, 3 }),    // C3k's Bottleneck(c_, c_, k=(3, 3), e=1)
            ("model.10.m.0.attn.qkv.conv.weight", new long[] { 256, 128, 1, 1 }), // dim 128 + 2 · key_dim 32 · 2 heads
            ("model.10.m.0.attn.pe.conv.weight", new long[] { 128, 1, 3, 3 }),
            ("model.10.m.0.ffn.1.bn.running_var", new long[] { 128 }),
            ("model.23.cv3.0.0.0.conv.weight", new long[] { 64, 1, 3, 3 }),      // DWConv(64, 64, 3)
            ("model.23.cv3.0.1.1.conv.weight", new long[] { 80, 80, 1, 1 }),
            ("model.23.cv3.2.2.bias", new long[] { 80 }),
            ("model.23.dfl.conv.weight", new long[] { 1, 16, 1, 1 }),
        };
        foreach (var (key, shape) in expected)
        {
            Assert.True(state.ContainsKey(key), $"missing {key}");
            Assert.Equal(shape, state[key].shape);
        }
        var attention = model.modules().OfType<Attention>().Single();
        Assert.Equal((2L, 64L, 32L), (attention.Heads, attention.HeadDim, attention.KeyDim));
        Assert.Equal(Math.Pow(32, -0.5), attention.Scale);
    }

    [Fact]
    public void DetectIsLegacyOnlyWithoutC3k2OrC2fCib()
    {
        using var v8 = DetectionModel.FromYaml("yolov8n.yaml");
        Assert.IsType<Detect>(v8.Head);
        Assert.Equal(897_664, v8.Summary()[22].Parameters);
        string withC2fCib = TestModels.TinyYaml().Replace("[-1, 3, C2f, [1024]]", "[-1, 3, C2fCIB, [1024, True]]");
        using var model = new DetectionModel(ModelConfig.Parse(withC2fCib, "cib.yaml"));
        Assert.IsType<Yolo11Detect>(model.Head); // parse_model sets legacy = False for C2fCIB too
    }

    [Fact]
    public void ForwardShapesAndDecodedLayout()
    {
        using var model = DetectionModel.FromYaml("yolo11n.yaml", nc: 3);
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        var maps = model.ForwardFeatures(rand(2, 3, 96, 64));
        Assert.Equal(new[] { new long[] { 2, 67, 12, 8 }, new long[] { 2, 67, 6, 4 }, new long[] { 2, 67, 3, 2 } }, maps.Select(m => m.shape));
        model.eval();
        Assert.Equal(new long[] { 2, 7, 96 + 24 + 6 }, model.Predict(rand(2, 3, 96, 64)).shape);
    }
}
