using System.Collections;
using System.Text.Json;
using Osprey.Interop;
using Osprey.Models.Building;

namespace Osprey.Tests.Interop;

/// <summary>A model YAML through Python's form (the dict a checkpoint pickles as <c>model.yaml</c>) and back.</summary>
public class CheckpointYamlTests
{
    [Theory]
    [InlineData("yolov8n.yaml")]
    [InlineData("yolo11s.yaml")]
    [InlineData("yolov10n.yaml")]
    public void EmbeddedConfigsRoundTripThroughTheDict(string name)
    {
        var original = ModelConfig.Load(name);
        var dict = CheckpointYaml.ToDict(original.ToPinnedYaml());
        Assert.Equal(original.Nc, dict["nc"]);
        Assert.Equal(original.Scale, dict["scale"]);
        Assert.Null(((IList)((IList)((IList)dict["head"]!)[0]!)[3]!)[0]);          // nn.Upsample's None

        var rebuilt = ModelConfig.Parse(CheckpointYaml.ToText(new Hashtable(dict), ["a", "b"]), "checkpoint", nc: 2);
        Assert.Equal((original.Scale, original.Depth, original.Width, original.MaxChannels), (rebuilt.Scale, rebuilt.Depth, rebuilt.Width, rebuilt.MaxChannels));
        Assert.Equal(["a", "b"], rebuilt.Names);
        Assert.Equal(Rows(ModelConfig.Parse(original.Text, name, original.Scale, nc: 2)), Rows(rebuilt));
    }

    private static IEnumerable<string> Rows(ModelConfig config) =>
        config.Layers.Select(r => $"{string.Join(",", r.From)}|{r.Repeats}|{r.Module}|{JsonSerializer.Serialize(r.Args)}");
}
