using Osprey.Models;
using Osprey.Models.Heads;
using static TorchSharp.torch;

namespace Osprey.Tests.Models;

public class DetectionModelForwardTests
{
    [Theory]
    [InlineData(64)]
    [InlineData(320)]
    public void TrainAndEvalShapes(int size)
    {
        using var model = DetectionModel.FromYaml("yolov8n.yaml");
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        var images = rand(2, 3, size, size);

        model.train();
        var maps = model.forward(images);
        Assert.Equal(3, maps.Length);
        for (int i = 0; i < 3; i++)
        {
            long cells = size / (8 << i);
            Assert.Equal(new long[] { 2, 144, cells, cells }, maps[i].shape);
        }

        model.eval();
        var outputs = model.forward(images);
        Assert.Single(outputs);
        long anchors = Enumerable.Range(0, 3).Sum(i => (long)Math.Pow(size / (8 << i), 2));
        Assert.Equal(new long[] { 2, 84, anchors }, outputs[0].shape);
        Assert.Equal(size == 64 ? 84 : 2100, anchors);

        var boxes = outputs[0].narrow(1, 0, 4);      // (2, 4, A) xywh px
        var scores = outputs[0].narrow(1, 4, 80);    // (2, 80, A)
        Assert.True(isfinite(outputs[0]).all().item<bool>());
        // Centres stay within 15 bins × 32 px of the image, sizes within [0, 30 bins × stride].
        Assert.InRange(boxes.narrow(1, 0, 2).min().item<float>(), -15f * 32, size + 15f * 32);
        Assert.InRange(boxes.narrow(1, 0, 2).max().item<float>(), -15f * 32, size + 15f * 32);
        Assert.InRange(boxes.narrow(1, 2, 2).min().item<float>(), 0f, 30f * 32);
        Assert.InRange(boxes.narrow(1, 2, 2).max().item<float>(), 0f, 30f * 32);
        Assert.InRange(scores.min().item<float>(), 0f, 1f);
        Assert.InRange(scores.max().item<float>(), 0f, 1f);
        // Fresh class bias prior ≈ sigmoid(log(5/80/(640/s)²)) → tiny scores.
        Assert.True(scores.mean().item<float>() < 0.05f);
    }

    [Fact]
    public void DecodePutsBoxesInPixels()
    {
        // Hand-built maps: every side's DFL peaks at bin 2 → ltrb = 2 cells → a 4-cell box centred on its anchor.
        using var detect = new Detect(2, new long[] { 16, 32, 64 });
        using var scope = NewDisposeScope();
        int size = 64;
        var maps = Enumerable.Range(0, 3).Select(i =>
        {
            long cells = size / (8 << i);
            var map = zeros(1, 64 + 2, cells, cells);      // (1, 4·16 + nc, h, w)
            for (int side = 0; side < 4; side++) map[0, side * 16 + 2] = tensor(100f);
            return map;
        }).ToArray();
        var output = detect.Decode(maps);                   // (1, 6, 84)
        Assert.Equal(new long[] { 1, 6, 84 }, output.shape);
        float[] first = output[0, .., 0].data<float>().ToArray();       // P3 cell (0, 0), stride 8
        Assert.Equal(new[] { 4f, 4f, 32f, 32f, 0.5f, 0.5f }, first.Select(v => MathF.Round(v, 3)));
        float[] second = output[0, .., 1].data<float>().ToArray();      // P3 cell (x=1, y=0)
        Assert.Equal(12f, second[0], 3);
        float[] last = output[0, .., 83].data<float>().ToArray();       // P5 cell (1, 1), stride 32
        Assert.Equal(new[] { 48f, 48f, 128f, 128f }, last.Take(4).Select(v => MathF.Round(v, 3)));
    }

    [Fact]
    public void FusedMatchesUnfusedInEval()
    {
        using var model = TestModels.Tiny();
        model.eval();
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        var images = rand(new long[] { 2, 3, 64, 64 }, generator: new Generator(7));
        var mapsDefaultBn = model.ForwardFeatures(images);
        TestModels.RandomiseBatchNorms(model);
        var before = model.Predict(images);
        var mapsBefore = model.ForwardFeatures(images);
        long parametersBefore = model.ParameterCount;

        model.Fuse();

        Assert.True(model.IsFused);
        var state = model.state_dict();
        Assert.DoesNotContain(state.Keys, k => k.Contains(".bn.", StringComparison.Ordinal));
        Assert.Contains("model.0.conv.bias", state.Keys);
        Assert.True(model.ParameterCount < parametersBefore);
        var after = model.Predict(images);
        var mapsAfter = model.ForwardFeatures(images);
        for (int i = 0; i < 3; i++)
            Assert.True((mapsAfter[i] - mapsBefore[i]).abs().max().item<float>() < 1e-4f, $"level {i} differs");
        // Boxes are in pixels (up to the image size), so compare relative to magnitude: float32 rounding of values
        // near 64 alone is ~4e-6 per operation.
        float difference = ((after - before).abs() / (before.abs() + 1)).max().item<float>();
        Assert.True(difference < 1e-4f, $"max |fused − unfused| / (1 + |unfused|) = {difference}");
        // The randomised BN must matter, otherwise this test could not fail.
        Assert.True((mapsBefore[0] - mapsDefaultBn[0]).abs().max().item<float>() > 0.1f);
    }

    [Fact]
    public void GflopsCountIsScaleInvariantAndIgnoresFusion()
    {
        using var model = TestModels.Tiny();
        double at320 = model.Gflops(320), at640 = model.Gflops(640);
        Assert.Equal(at640, at320 * 4, 9);
        Assert.True(model.training); // mode restored
        model.Fuse();
        Assert.Equal(at640, model.Gflops(640), 9);
    }
}

public class DetectionModelTrainingTests
{
    [Fact]
    public void TrainingForwardBackpropagatesAndUpdatesBatchNorm()
    {
        using var model = TestModels.Tiny(nc: 4);
        model.train();
        using var scope = NewDisposeScope();
        var maps = model.ForwardFeatures(rand(2, 3, 64, 64));
        Assert.Equal(new long[] { 2, 68, 8, 8 }, maps[0].shape); // no = 4 + 64
        maps.Select(m => m.square().mean()).Aggregate((a, b) => a + b).backward();

        var parameters = model.named_parameters().ToDictionary(p => p.name, p => p.parameter);
        Assert.NotNull(parameters["model.0.conv.weight"].grad);
        Assert.True(parameters["model.0.conv.weight"].grad!.abs().sum().item<float>() > 0);
        Assert.NotNull(parameters["model.22.cv3.2.2.bias"].grad);
        Assert.Null(parameters["model.22.dfl.conv.weight"].grad); // fixed arange
        Assert.Equal(1L, model.state_dict()["model.0.bn.num_batches_tracked"].item<long>());
    }
}
