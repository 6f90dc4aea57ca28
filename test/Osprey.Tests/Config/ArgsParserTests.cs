using Osprey.Config;

namespace Osprey.Tests.Config;

public class ArgsParserTests
{
    static IEnumerable<(string Key, object? Value)> Values(OspreyArgs args) =>
        ArgsSchema.All.Select(spec => (spec.Key, spec.Property.GetValue(args)));

    [Fact]
    public void KeyValueAndDashDashFormsParseTheSame()
    {
        var ultralytics = ArgsParser.Parse(new[]
            { "data=coco8.yaml", "model=yolov8n.yaml", "epochs=3", "lr0=0.02", "cos_lr=True", "batch=-1", "device=0,1" });
        var dashed = ArgsParser.Parse(new[]
            { "--data", "coco8.yaml", "--model=yolov8n.yaml", "--epochs", "3", "--lr0", "0.02", "--cos_lr", "--batch", "-1", "--device", "0,1" });
        Assert.Equal(Values(ultralytics), Values(dashed));
        Assert.Equal(3, dashed.Epochs);
        Assert.Equal(0.02, dashed.Lr0);
        Assert.True(dashed.CosLr);
        Assert.Equal(-1, dashed.Batch);
        Assert.Equal("0,1", dashed.Device);
        Assert.Equal(0.01, dashed.Lrf); // untouched keys keep their defaults
    }

    [Fact]
    public void BareFlagIsTrueAndExplicitBoolValuesAreRead()
    {
        Assert.True(ArgsParser.Parse(new[] { "--save_json" }).SaveJson);
        Assert.True(ArgsParser.Parse(new[] { "--save_json", "--epochs", "2" }).SaveJson);
        Assert.False(ArgsParser.Parse(new[] { "--plots", "False" }).Plots);
        Assert.False(ArgsParser.Parse(new[] { "plots=false" }).Plots);
        Assert.True(ArgsParser.Parse(new[] { "save-json=1" }).SaveJson);
    }

    [Fact]
    public void UnknownKeyNamesTheKeyAndTheNearestValidOne()
    {
        var e = Assert.Throws<ArgumentsException>(() => ArgsParser.Parse(new[] { "epoch=3" }));
        Assert.Equal("'epoch' is not a valid osprey argument; did you mean 'epochs'?", e.Message);
        e = Assert.Throws<ArgumentsException>(() => ArgsParser.Parse(new[] { "--imgsize", "320" }));
        Assert.Equal("'imgsize' is not a valid osprey argument; did you mean 'imgsz'?", e.Message);
    }

    [Fact]
    public void BadValuesAndBareWordsAreClearErrors()
    {
        Assert.Equal("'epochs=three' is not valid: epochs takes an integer",
            Assert.Throws<ArgumentsException>(() => ArgsParser.Parse(new[] { "epochs=three" })).Message);
        Assert.Contains("'coco8.yaml' is not an argument",
            Assert.Throws<ArgumentsException>(() => ArgsParser.Parse(new[] { "coco8.yaml" })).Message);
        Assert.Contains("needs a value",
            Assert.Throws<ArgumentsException>(() => ArgsParser.Parse(new[] { "--epochs" })).Message);
    }

    [Fact]
    public void NoneClearsNullableArguments()
    {
        var args = ArgsParser.Parse(new[] { "conf=0.5", "conf=None" });
        Assert.Null(args.Conf);
    }

    [Theory]
    [InlineData("WarmupBiasLr", "warmup_bias_lr")]
    [InlineData("Lr0", "lr0")]
    [InlineData("HsvH", "hsv_h")]
    [InlineData("SavePeriodSteps", "save_period_steps")]
    public void SnakeCaseKeysFollowUltralytics(string property, string key) =>
        Assert.Equal(key, ArgsSchema.ToSnakeCase(property));

    [Fact]
    public void DefaultsAreUltralytics()
    {
        // ultralytics/cfg/default.yaml
        var d = new OspreyArgs();
        Assert.Equal((100, 16, 640, 0.01, 0.01, 0.937, 0.0005), (d.Epochs, d.Batch, d.Imgsz, d.Lr0, d.Lrf, d.Momentum, d.WeightDecay));
        Assert.Equal((3.0, 0.8, 0.1, 7.5, 0.5, 1.5, 64), (d.WarmupEpochs, d.WarmupMomentum, d.WarmupBiasLr, d.Box, d.Cls, d.Dfl, d.Nbs));
        Assert.Equal((0.015, 0.7, 0.4, 0.1, 0.5, 0.5, 1.0, 10), (d.HsvH, d.HsvS, d.HsvV, d.Translate, d.Scale, d.Fliplr, d.Mosaic, d.CloseMosaic));
        Assert.Equal((0.7, 300, "auto", 100), (d.Iou, d.MaxDet, d.Optimizer, d.Patience));
    }

    [Fact]
    public void EditDistanceIsLevenshtein()
    {
        Assert.Equal(3, ArgsSchema.EditDistance("kitten", "sitting"));
        Assert.Equal(0, ArgsSchema.EditDistance("imgsz", "imgsz"));
        Assert.Equal(5, ArgsSchema.EditDistance("", "imgsz"));
    }
}
