using Osprey.Models;
using Osprey.Models.Blocks;

namespace Osprey.Tests.Models;

public class StateDictKeyTests
{
    [Fact]
    public void YoloV8nKeysMatchUltralytics()
    {
        using var model = DetectionModel.FromYaml("yolov8n.yaml");
        var state = model.state_dict();
        string[] expected =
        {
            "model.0.conv.weight", "model.0.bn.weight", "model.0.bn.bias", "model.0.bn.running_mean",
            "model.0.bn.running_var", "model.0.bn.num_batches_tracked", "model.2.m.0.cv1.bn.running_mean",
            "model.4.m.1.cv2.conv.weight", "model.9.cv2.conv.weight", "model.21.m.0.cv2.bn.bias",
            "model.22.cv2.0.0.conv.weight", "model.22.cv2.0.2.weight", "model.22.cv2.2.2.bias",
            "model.22.cv3.1.1.bn.running_var", "model.22.cv3.2.2.weight", "model.22.dfl.conv.weight",
        };
        foreach (var key in expected) Assert.True(state.ContainsKey(key), $"missing {key}");
        Assert.DoesNotContain(state.Keys, k => k.Contains("upsample", StringComparison.OrdinalIgnoreCase) || k.StartsWith("model.10.", StringComparison.Ordinal));

        // 57 Conv blocks × (conv.weight + 5 BN tensors) + 6 plain Conv2d × (weight, bias) + DFL weight.
        int convBlocks = model.modules().OfType<Conv>().Count();
        Assert.Equal(57, convBlocks);
        Assert.Equal(57 * 6 + 6 * 2 + 1, state.Count);
        Assert.Equal(355, state.Count);

        Assert.Equal(new long[] { 64, 64, 1, 1 }, state["model.22.cv2.0.2.weight"].shape);
        Assert.Equal(new long[] { 80, 80, 1, 1 }, state["model.22.cv3.0.2.weight"].shape);
        Assert.Equal(new long[] { 1, 16, 1, 1 }, state["model.22.dfl.conv.weight"].shape);
        Assert.Equal(Enumerable.Range(0, 16).Select(i => (float)i), state["model.22.dfl.conv.weight"].data<float>().ToArray());
        Assert.False(state["model.22.dfl.conv.weight"].requires_grad);
    }

    [Fact]
    public void DetectBiasesFollowUltralyticsPrior()
    {
        using var model = DetectionModel.FromYaml("yolov8n.yaml");
        var state = model.state_dict();
        Assert.Equal(new[] { 8f, 16f, 32f }, model.Strides);
        Assert.All(state["model.22.cv2.1.2.bias"].data<float>().ToArray(), b => Assert.Equal(1f, b));
        float[] expected = new[] { 8, 16, 32 }.Select(s => (float)Math.Log(5.0 / 80 / Math.Pow(640.0 / s, 2))).ToArray();
        for (int i = 0; i < 3; i++)
            Assert.All(state[$"model.22.cv3.{i}.2.bias"].data<float>().ToArray(), b => Assert.Equal(expected[i], b, 5));
        Assert.Equal(-11.5366, expected[0], 3); // log(5 / 80 / 80²)
    }

    [Fact]
    public void SummaryRowsMatchUltralyticsTable()
    {
        using var model = DetectionModel.FromYaml("yolov8n.yaml");
        var rows = model.Summary();
        Assert.Equal(23, rows.Count);
        Assert.Equal(new LayerSummary(0, "-1", 1, 464, "Conv", "[3, 16, 3, 2]"), rows[0]);
        Assert.Equal(new LayerSummary(2, "-1", 1, 7360, "C2f", "[32, 32, 1, True]"), rows[2]);
        Assert.Equal(2, rows[4].Repeats);
        Assert.Equal(49664, rows[4].Parameters);
        Assert.Equal(164608, rows[9].Parameters);
        Assert.Equal("nn.Upsample", rows[10].Module);
        Assert.Equal(new LayerSummary(11, "[-1, 6]", 1, 0, "Concat", "[1]"), rows[11]);
        Assert.Equal(new LayerSummary(22, "[15, 18, 21]", 1, 897664, "Detect", "[80, [64, 128, 256]]"), rows[22]);
    }
}
