using Osprey.Distributed;
using Osprey.Models;
using Osprey.Tests.Models;
using Osprey.Training;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Osprey.Tests.Training;

/// <summary>
/// <see cref="FlatParameters"/>: the flat layout changes where parameters, gradients and buffers live, not their values;
/// the flat optimiser step (SGD, AdamW, with clipping and the EMA) follows the per-parameter one; the saved optimiser
/// state is the same format both ways.
/// </summary>
public class FlatParametersTests
{
    static readonly SingleProcessGroup Alone = new();

    // Two identical tiny models (nc 3) with randomised BatchNorms; the second one laid out flat when asked.
    static (DetectionModel Plain, DetectionModel Other) Pair()
    {
        torch.manual_seed(11);
        var plain = TestModels.Tiny(3);
        TestModels.RandomiseBatchNorms(plain, seed: 4);
        var other = TestModels.Tiny(3);
        other.load_state_dict(plain.state_dict());
        plain.train();
        other.train();
        return (plain, other);
    }

    static FlatParameters Flatten(DetectionModel model)
    {
        var groups = ParameterGroups.Of(model);
        return FlatParameters.TryCreate(new[] { groups.Biases, groups.Weights, groups.NormWeights }, model, out string? reason)
            ?? throw new InvalidOperationException(reason);
    }

    // Σ mean(map²) over the levels (the PyTorch reference's loss), times gain; backward.
    static void Backward(DetectionModel model, Tensor images, double gain)
    {
        using var scope = NewDisposeScope();
        var maps = model.ForwardFeatures(images);
        var loss = maps.Select(m => m.square().mean()).Aggregate((a, b) => a + b) * gain;
        loss.backward();
    }

    static Dictionary<string, Tensor> State(nn.Module model) =>
        model.state_dict().ToDictionary(kv => kv.Key, kv => kv.Value.detach().clone());

    [Fact]
    public void LayoutKeepsParametersValuesAndGradientsAndMakesThemViews()
    {
        using var scope = NewDisposeScope();
        var (plain, flatModel) = Pair();
        var before = flatModel.named_parameters().ToList();
        using var flat = Flatten(flatModel);

        // The same Parameter objects, the same values, now views of the group buffers.
        var after = flatModel.named_parameters().ToList();
        Assert.Equal(before.Select(p => p.name), after.Select(p => p.name));
        Assert.All(before.Zip(after), pair => Assert.Same(pair.First.parameter, pair.Second.parameter));
        var reference = plain.state_dict();
        foreach (var (name, value) in flatModel.state_dict()) Assert.True(value.SameAs(reference[name]), name);
        Assert.Equal(plain.parameters().Count(p => p.requires_grad), flat.Groups.Sum(g => g.Parameters.Count));
        Assert.Equal(plain.parameters().Where(p => p.requires_grad).Sum(p => p.numel()), flat.Groups.Sum(g => g.Count));
        Assert.NotNull(flat.Buffers);
        Assert.Equal(plain.named_buffers().Count(b => b.buffer.is_floating_point()), flat.Buffers!.Names.Count);

        // Backward accumulates into the gradient buffers, with the per-parameter model's gradients bit for bit.
        var images = rand(2, 3, 64, 64, generator: new Generator(3));
        Backward(plain, images, 1.0);
        Backward(flatModel, images, 1.0);
        var plainParameters = plain.named_parameters().ToDictionary(p => p.name, p => p.parameter);
        foreach (var (name, parameter) in flatModel.named_parameters().Where(p => p.parameter.requires_grad))
            Assert.True(parameter.grad!.SameAs(plainParameters[name].grad!), $"{name}: gradient");
        // BatchNorm updated its running statistics inside the flat buffer.
        var plainState = plain.state_dict();
        foreach (var (name, value) in flatModel.state_dict()) Assert.True(value.SameAs(plainState[name]), $"{name} after a training forward");
        Assert.True(flat.Groups[1].Gradients.abs().sum().item<float>() > 0);
        var firstWeight = flat.Groups[1].Parameters[0];
        using (no_grad()) flat.Groups[1].Values.narrow(0, 0, 1).fill_(7f);   // the buffer is the parameter's storage
        Assert.Equal(7f, firstWeight.reshape(-1)[0].item<float>());

        // Zeroing keeps the views: a second backward fills them again.
        flat.ZeroGradients();
        Assert.Equal(0f, flat.Groups[1].Gradients.abs().sum().item<float>());
        Backward(flatModel, images, 1.0);
        Assert.True(flat.Groups[1].Gradients.abs().sum().item<float>() > 0);
    }

    [Theory]
    [InlineData("SGD", 0.01, 3)]     // gradients below the clip norm: bit for bit
    [InlineData("SGD", 5000.0, 1)]   // clipped: to rounding (more steps would amplify it through BatchNorm)
    [InlineData("AdamW", 0.01, 3)]
    public void FlatStepFollowsThePerParameterStep(string optimizerName, double gain, int steps)
    {
        using var scope = NewDisposeScope();
        var (plain, flatModel) = Pair();
        using var flat = Flatten(flatModel);
        var emaPlain = TestModels.Tiny(3);
        emaPlain.load_state_dict(plain.state_dict());
        var emaFlat = TestModels.Tiny(3);
        emaFlat.load_state_dict(plain.state_dict());
        var averagePlain = new ModelEma(emaPlain, tau: 2);
        var averageFlat = new ModelEma(emaFlat, tau: 2);
        averageFlat.UseFlatLayout(flatModel, flat);
        TrainingOptimizer Make(DetectionModel m, FlatParameters? f) =>
            TrainingOptimizer.Create(m, optimizerName, 0.01, 0.937, 0.0005, 0.1, 3, 100, 4, 1, 4, f);
        var optimizerPlain = Make(plain, null);
        var optimizerFlat = Make(flatModel, flat);
        Assert.Null(optimizerPlain.Optimizer.Flat);
        Assert.Same(flat, optimizerFlat.Optimizer.Flat);

        var initial = State(plain);
        var generator = new Generator(5);
        for (int step = 0; step < steps; step++)
        {
            var images = rand(2, 3, 64, 64, generator: generator);
            Backward(plain, images, gain);
            Backward(flatModel, images, gain);
            Trainer.OptimizerStep(plain, optimizerPlain.Optimizer, averagePlain, null, Alone);
            Trainer.OptimizerStep(flatModel, optimizerFlat.Optimizer, averageFlat, null, Alone);
        }

        // The same values: the per-element formulas are the same; only the clip norm's summation order differs
        // (3 group norms instead of one per parameter), so clipped runs agree to rounding.
        double tolerance = gain > 1 ? 1e-6 : 0;
        foreach (var (what, a, b) in new[] { ("model", State(plain), State(flatModel)), ("ema", State(emaPlain), State(emaFlat)) })
            foreach (var (name, value) in a)
            {
                double difference = value.is_floating_point() ? (value - b[name]).abs().max().item<float>() : (value.SameAs(b[name]) ? 0 : 1);
                double scale = value.is_floating_point() ? Math.Max(1, value.abs().max().item<float>()) : 1;
                Assert.True(difference <= tolerance * scale, $"{what} {name}: differs by {difference:g3} (tolerance {tolerance * scale:g3})");
            }
        foreach (var (name, parameter) in plain.named_parameters().Where(p => p.parameter.requires_grad))
            Assert.False(parameter.SameAs(initial[name]), $"{name} did not move");

        // The saved state has the same format: flat → per parameter and back is bit-exact.
        byte[] savedFlat = Save(optimizerFlat.Optimizer);
        var (plain2, flat2Model) = Pair();
        using var flat2 = Flatten(flat2Model);
        var reloadedPlain = Make(plain2, null);
        Load(reloadedPlain.Optimizer, savedFlat);
        var reloadedFlat = Make(flat2Model, flat2);
        Load(reloadedFlat.Optimizer, Save(reloadedPlain.Optimizer));
        Assert.Equal(savedFlat, Save(reloadedFlat.Optimizer));
        if (gain <= 1) Assert.Equal(Save(optimizerPlain.Optimizer), savedFlat);
    }

    [Theory]
    [InlineData(0.01)]
    [InlineData(5000.0)]
    public void ClipNormIsTorchSharpsClipGradNormBitForBit(double gain)
    {
        using var scope = NewDisposeScope();
        var (a, b) = Pair();
        var images = rand(2, 3, 64, 64, generator: new Generator(8));
        Backward(a, images, gain);
        Backward(b, images, gain);
        var trainableA = a.parameters().Where(p => p.requires_grad).ToList();
        double norm = nn.utils.clip_grad_norm_(trainableA, Trainer.MaxGradientNorm);
        Assert.True(gain > 1 ? norm > Trainer.MaxGradientNorm : norm < Trainer.MaxGradientNorm, $"norm {norm} for gain {gain}");
        var trainableB = b.parameters().Where(p => p.requires_grad).ToList();
        GradientClipping.ClipNorm(trainableB.Select(p => p.grad!).ToList(), Trainer.MaxGradientNorm);
        foreach (var (pa, pb) in trainableA.Zip(trainableB)) Assert.True(pa.grad!.SameAs(pb.grad!));
        if (gain > 1)
        {
            var total = stack(trainableB.Select(p => p.grad!.norm(2f)).ToArray()).norm(2f).item<float>();
            Assert.Equal(Trainer.MaxGradientNorm, total, 3);
        }
    }

    [Fact]
    public void FlatClipNormTakesTheNormAsAccuratelyAsPerParameter()
    {
        using var scope = NewDisposeScope();
        var (plain, flatModel) = Pair();
        using var flat = Flatten(flatModel);
        var images = rand(2, 3, 64, 64, generator: new Generator(8));
        Backward(plain, images, 5000);
        Backward(flatModel, images, 5000);
        var gradients = plain.parameters().Where(p => p.requires_grad).Select(p => p.grad!).ToList();
        double exact = Math.Sqrt(gradients.Sum(g => g.to(ScalarType.Float64).square().sum().item<double>()));
        Assert.True(exact > 1e4, $"norm {exact}: not clipped hard enough to tell");
        GradientClipping.ClipNorm(gradients, Trainer.MaxGradientNorm);
        GradientClipping.ClipNorm(flat.GradientBuffers.ToList(), Trainer.MaxGradientNorm, flat: true);
        // Both end at the clip norm to float32 accuracy, measured in float64.
        foreach (var clipped in new[] { gradients, flat.GradientBuffers.ToList() })
        {
            double norm = Math.Sqrt(clipped.Sum(g => g.to(ScalarType.Float64).square().sum().item<double>()));
            Assert.True(Math.Abs(norm - Trainer.MaxGradientNorm) < 1e-5, $"clipped to {norm:R}");
        }
    }

    /// <summary>
    /// Optimiser state is read on the CPU and copied to the parameters' device: Tensor.Load writes the bytes straight
    /// into a tensor's memory, which on a GPU would be a device address. The meta device (no memory at all) shows it
    /// without a GPU, per parameter and flat.
    /// </summary>
    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void OptimiserStateLoadsOntoAParametersDevice(bool flatLayout)
    {
        using var scope = NewDisposeScope();
        var (plain, _) = Pair();
        var optimizer = TrainingOptimizer.Create(plain, "SGD", 0.01, 0.937, 0.0005, 0.1, 3, 100, 4, 1, 4);
        Backward(plain, rand(2, 3, 64, 64, generator: new Generator(2)), 1.0);
        Trainer.OptimizerStep(plain, optimizer.Optimizer, new ModelEma(TestModels.Tiny(3)), null, Alone);
        byte[] state = Save(optimizer.Optimizer);

        var elsewhere = TestModels.Tiny(3);
        elsewhere.to(DeviceType.META);
        using var flat = flatLayout ? Flatten(elsewhere) : null;
        var loaded = TrainingOptimizer.Create(elsewhere, "SGD", 0.01, 0.937, 0.0005, 0.1, 3, 100, 4, 1, 4, flat);
        Load(loaded.Optimizer, state);
        Assert.Equal(1, loaded.Optimizer.Steps);
    }

    /// <summary>fp16: a step the trainer marks as overflowed (its forward's loss was not finite) is skipped without
    /// looking at the gradients: weights kept, scale halved, gradients zeroed, the EMA still updated (as Ultralytics).</summary>
    [Fact]
    public void AnOverflowedStepIsSkippedAndTheScaleBacksOff()
    {
        using var scope = NewDisposeScope();
        var (_, model) = Pair();
        using var flat = Flatten(model);
        var optimizer = TrainingOptimizer.Create(model, "SGD", 0.01, 0.937, 0.0005, 0.1, 3, 100, 4, 1, 4, flat);
        var emaModel = TestModels.Tiny(3);
        emaModel.load_state_dict(model.state_dict());
        using var ema = new ModelEma(emaModel, tau: 2);
        var scaler = new LossScaler(initialScale: 1024);
        Backward(model, rand(2, 3, 64, 64, generator: new Generator(6)), 1024);
        var before = State(model);
        Trainer.OptimizerStep(model, optimizer.Optimizer, ema, scaler, Alone, skip: true);
        foreach (var (name, value) in State(model)) Assert.True(value.SameAs(before[name]), $"{name} moved");
        Assert.Equal(512, scaler.Scale);
        Assert.Equal(1, scaler.SkippedSteps);
        Assert.Equal(0, optimizer.Optimizer.Steps);
        Assert.Equal(1, ema.Updates);
        Assert.All(flat.GradientBuffers, g => Assert.Equal(0f, g.abs().sum().item<float>()));

        Backward(model, rand(2, 3, 64, 64, generator: new Generator(6)), 512);     // the next step goes through
        Trainer.OptimizerStep(model, optimizer.Optimizer, ema, scaler, Alone);
        Assert.Equal(1, optimizer.Optimizer.Steps);
        Assert.Equal(512, scaler.Scale);
    }

    [Fact]
    public void RefusesParametersThatCannotShareABuffer()
    {
        using var scope = NewDisposeScope();
        var a = new Parameter(zeros(3));
        var b = new Parameter(zeros(3, dtype: ScalarType.Float64));
        Assert.Null(FlatParameters.TryCreate(new[] { new[] { a }, new[] { b } }, null, out string? reason));
        Assert.Contains("two dtypes", reason);
        Assert.Null(FlatParameters.TryCreate(new[] { new[] { a }, new[] { a } }, null, out reason));
        Assert.Contains("two groups", reason);
        var frozen = new Parameter(zeros(2), requires_grad: false);
        Assert.Null(FlatParameters.TryCreate(new[] { new[] { frozen } }, null, out reason));
        Assert.Contains("gradient", reason);
    }

    [Fact]
    public void DataParallelReducesTheFlatGradientsInPlaceAndBroadcastsTheFlatBuffers()
    {
        using var scope = NewDisposeScope();
        var (_, model) = Pair();
        using var flat = Flatten(model);
        var group = new FakePeerGroup(rank: 1, peer: 3f, rootValue: 0.25f);
        using var ddp = new DataParallel(model, group, bucketBytes: 4096, flat: flat);
        Assert.True(ddp.UsesFlatGradients);
        long bytes = flat.Groups.Sum(g => g.Count) * 4;
        Assert.Equal(bytes, ddp.BucketBytes.Sum());
        Assert.All(ddp.BucketBytes, b => Assert.InRange(b, 1, 4096));

        // The buffers are views of one flat buffer: one broadcast reaches every BatchNorm statistic.
        ddp.BroadcastBuffers();
        Assert.Equal(1, group.Broadcasts);
        var statistics = model.named_buffers().Where(b => b.buffer.is_floating_point()).ToList();
        Assert.NotEmpty(statistics);
        Assert.All(statistics, b => Assert.True(b.buffer.eq(0.25f).all().item<bool>(), b.name));

        // The all-reduce averages the gradients where backward wrote them and the optimiser reads them.
        ddp.BeginMicroStep(synchronize: true);
        Backward(model, rand(2, 3, 64, 64, generator: new Generator(3)), 1.0);
        var parameters = model.named_parameters().Where(p => p.parameter.requires_grad).ToList();
        var expected = parameters.Select(p => p.parameter.grad!.add(3f).div(2)).ToList();
        ddp.AverageGradients();
        Assert.Equal(ddp.BucketBytes.Count, group.AllReduces);
        for (int i = 0; i < parameters.Count; i++)
            Assert.True(parameters[i].parameter.grad!.SameAs(expected[i]), parameters[i].name);
        var fromBuffers = flat.Groups.SelectMany(g => g.Parameters.Select((p, i) => g.Slice(g.Gradients, i))).ToList();
        Assert.All(fromBuffers.Zip(flat.Groups.SelectMany(g => g.Parameters)), pair => Assert.True(pair.First.SameAs(pair.Second.grad!)));
    }

    [Fact]
    public void LossScalingUnscalesAndChecksTheFlatBuffers()
    {
        using var scope = NewDisposeScope();
        var (plain, flatModel) = Pair();
        using var flat = Flatten(flatModel);
        var images = rand(2, 3, 64, 64, generator: new Generator(9));
        var scaler = new LossScaler(initialScale: 1024);
        Backward(plain, images, 1024);
        Backward(flatModel, images, 1024);
        var plainParameters = plain.parameters().Where(p => p.requires_grad).ToList();
        Assert.False(scaler.UnscaleAndCheck(plainParameters));
        Assert.False(scaler.UnscaleAndCheck(flat.GradientBuffers.ToList(), CPU));
        var byName = plain.named_parameters().ToDictionary(p => p.name, p => p.parameter);
        foreach (var (name, parameter) in flatModel.named_parameters().Where(p => p.parameter.requires_grad))
            Assert.True(parameter.grad!.SameAs(byName[name].grad!), $"{name}: unscaled gradient");

        using (no_grad()) flat.Groups[2].Gradients.narrow(0, 1, 1).fill_(float.PositiveInfinity);
        Assert.True(scaler.UnscaleAndCheck(flat.GradientBuffers.ToList(), CPU));
    }

    static byte[] Save(GroupedOptimizer optimizer)
    {
        using var stream = new MemoryStream();
        using (var writer = new BinaryWriter(stream, System.Text.Encoding.UTF8, leaveOpen: true)) optimizer.Save(writer);
        return stream.ToArray();
    }

    static void Load(GroupedOptimizer optimizer, byte[] state)
    {
        using var reader = new BinaryReader(new MemoryStream(state));
        optimizer.Load(reader);
    }
}
