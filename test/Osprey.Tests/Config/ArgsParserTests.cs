using Osprey.Data;
using Osprey.Config;

namespace Osprey.Tests.Config;

public class ArgsParserTests
{
    static IEnumerable<(string Key, string Value)> Values(OspreyArgs args) =>
        ArgsSchema.All.Select(spec => (spec.Key, ArgsSchema.Format(spec.Property.GetValue(args))));

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
        Assert.Equal(new[] { 0, 1 }, dashed.Device!.CudaIndices);
        Assert.Equal(0.01, dashed.Lrf); // untouched keys keep their defaults
    }

    [Fact]
    public void TypedArgumentsAreParsedWithTheArgumentsAndWrittenBackAsTheyParse()
    {
        var args = ArgsParser.Parse(new[] { "cache=disk", "resume=runs/x/weights/last.ckpt", "freeze=[0,3,5]", "optimizer=adamw",
            "device=cuda:1", "amp_dtype=bfloat16", "split=test", "classes=[0, 2]", "format=ONNX" });
        Assert.Equal(ImageCacheMode.Disk, args.Cache);
        Assert.Equal(("runs/x/weights/last.ckpt", false), (args.Resume.Checkpoint, args.Resume.Latest));
        Assert.Null(args.Freeze!.Count);
        Assert.Equal(new[] { 0, 3, 5 }, args.Freeze.Indices);
        Assert.Equal((OptimizerChoice.AdamW, AmpDtype.BF16, DatasetSplit.Test, ExportFormat.Onnx), (args.Optimizer, args.AmpDtype, args.Split, args.Format));
        Assert.True(args.Device!.IsCuda);
        Assert.Equal(new[] { 1 }, args.Device.CudaIndices);
        Assert.Equal(new[] { 0, 2 }, args.Classes!.Indices);
        var again = ArgsYaml.Deserialize(ArgsYaml.Serialize(args));   // args.yaml and back: the same values
        Assert.Equal(ArgsYaml.Serialize(args), ArgsYaml.Serialize(again));
        Assert.Equal(args.Freeze.Indices, again.Freeze!.Indices);
        Assert.Equal(args.Device.CudaIndices, again.Device!.CudaIndices);

        var counted = ArgsParser.Parse(new[] { "freeze=3", "cache=True", "resume=True", "device=cpu" });
        Assert.Equal(3, counted.Freeze!.Count);
        Assert.Equal(new[] { 0, 1, 2 }, counted.Freeze.Indices);
        Assert.Equal((ImageCacheMode.Ram, true, false), (counted.Cache, counted.Resume.Latest, counted.Device!.IsCuda));
        var defaults = new OspreyArgs();
        Assert.Equal((ImageCacheMode.None, false, null, null), (defaults.Cache, defaults.Resume.Enabled, defaults.Freeze, defaults.Device));
    }

    [Theory]
    [InlineData("cache=yes", "cache takes False, ram or disk")]
    [InlineData("optimizer=Adam", "optimizer=Adam is not supported yet: use SGD, AdamW or auto")]
    [InlineData("optimizer=lion", "optimizer takes SGD, AdamW or auto")]
    [InlineData("amp_dtype=int8", "amp_dtype takes auto, bf16 or fp16")]
    [InlineData("format=engine", "format=engine: only onnx is supported")]
    [InlineData("split=holdout", "split takes val, test or train")]
    [InlineData("classes=person", "classes takes class indices like 0,2")]
    [InlineData("freeze=first", "freeze takes a layer count or a list of layer indices")]
    [InlineData("device=gpu", "device=gpu is not a device")]
    public void ABadTypedValueIsAnErrorWhenTheArgumentsAreParsed(string token, string message) =>
        Assert.Contains(message, Assert.Throws<ArgumentsException>(() => ArgsParser.Parse(new[] { token })).Message);

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
        Assert.Equal((0.7, 300, OptimizerChoice.Auto, 100), (d.Iou, d.MaxDet, d.Optimizer, d.Patience));
    }

    [Fact]
    public void EditDistanceIsLevenshtein()
    {
        Assert.Equal(3, ArgsSchema.EditDistance("kitten", "sitting"));
        Assert.Equal(0, ArgsSchema.EditDistance("imgsz", "imgsz"));
        Assert.Equal(5, ArgsSchema.EditDistance("", "imgsz"));
    }
}
