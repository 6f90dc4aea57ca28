using Osprey.Config;
using Osprey.Training;

namespace Osprey.Tests.Training;

public class ResultsCsvTests
{
    [Theory]
    [InlineData(1.0, "1")]
    [InlineData(0.123456789, "0.123457")]
    [InlineData(1.5e-5, "1.5e-05")]
    [InlineData(0.0001, "0.0001")]
    [InlineData(123456789.0, "1.23457e+08")]
    [InlineData(999999.5, "1e+06")]
    [InlineData(2.50, "2.5")]
    [InlineData(-0.0625, "-0.0625")]
    [InlineData(98.7654321, "98.7654")]
    public void FormatsLikePrintfG6(double value, string expected) => Assert.Equal(expected, ResultsCsv.FormatG6(value));

    [Fact]
    public void WritesUltralyticsHeaderOnceAndRowsThatReadBack()
    {
        string path = Path.Combine(Directory.CreateTempSubdirectory("osprey-csv").FullName, "results.csv");
        var row = new EpochResult(1, 12.5, new[] { 1.25, 2.5, 1.125 }, 0.5, 0.25, 0.75, 0.375, new[] { 1.0, 2.0, 3.0 },
            new[] { 0.07, 0.001, 0.001 });
        ResultsCsv.Append(path, row);
        ResultsCsv.Append(path, row with { Epoch = 2 });
        string[] lines = File.ReadAllLines(path);
        Assert.Equal("epoch,time,train/box_loss,train/cls_loss,train/dfl_loss,metrics/precision(B),metrics/recall(B)," +
            "metrics/mAP50(B),metrics/mAP50-95(B),val/box_loss,val/cls_loss,val/dfl_loss,lr/pg0,lr/pg1,lr/pg2", lines[0]);
        Assert.Equal("1,12.5,1.25,2.5,1.125,0.5,0.25,0.75,0.375,1,2,3,0.07,0.001,0.001", lines[1]);
        Assert.Equal(3, lines.Length);
        var rows = ResultsCsv.Read(path);
        Assert.Equal(2.0, rows[1]["epoch"]);
        Assert.Equal(0.375, rows[0]["metrics/mAP50-95(B)"]);
    }

    [Fact]
    public void ArgsYamlRoundTripsEveryArgument()
    {
        var args = ArgsParser.Parse(new[] { "data=my data.yaml", "epochs=7", "lr0=0.02", "cos_lr=True", "device=0,1", "conf=None", "resume=true" });
        string yaml = ArgsYaml.Serialize(args);
        Assert.Contains("epochs: 7\n", yaml);
        Assert.Contains("cos_lr: true\n", yaml);
        Assert.Contains("data: 'my data.yaml'\n", yaml);
        Assert.Contains("conf: null\n", yaml);
        var back = ArgsYaml.Deserialize(yaml);
        foreach (var spec in ArgsSchema.All)                                     // the same values, typed ones by their text
            Assert.Equal(ArgsSchema.Format(spec.Property.GetValue(args)), ArgsSchema.Format(spec.Property.GetValue(back)));
        Assert.Equal(new[] { 0, 1 }, back.Device!.CudaIndices);
        Assert.True(back.Resume.Latest);

        // an args.yaml of an earlier Osprey (no dialect line; strings for cache and resume) reads with that Osprey's meaning:
        // its freeze=[3] froze layers 0, 1 and 2; today's freeze=[3] is layer 3 (Ultralytics')
        var old = ArgsYaml.Deserialize("cache: 'false'\npretrained: 'true'\nresume: 'false'\noptimizer: auto\nfreeze: '[3]'\nepochs: 3\n");
        Assert.Equal((Osprey.Data.ImageCacheMode.None, false, OptimizerChoice.Auto, 3, true), (old.Cache, old.Resume.Enabled, old.Optimizer, old.Epochs, old.Pretrained.Enabled));
        Assert.Equal(new[] { 0, 1, 2 }, old.Freeze!.Indices);
        var today = ArgsYaml.Deserialize(ArgsYaml.Serialize(ArgsParser.Parse(new[] { "freeze=[3]" })));
        Assert.StartsWith(ArgsYaml.Marker + "\n", ArgsYaml.Serialize(today));
        Assert.Equal(new[] { 3 }, today.Freeze!.Indices);
    }
}
