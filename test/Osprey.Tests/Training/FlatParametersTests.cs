using Osprey.Config;
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
/// the optimiser step on the flat buffers (SGD, AdamW, with clipping and the EMA) follows TorchSharp's own optimisers and
/// clip_grad_norm_ on an ordinary model; the saved optimiser state round-trips.
/// </summary>
public class FlatParametersTests
{
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

    static FlatParameters Flatten(DetectionModel model) => FlatParameters.For(model);

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

    // TorchSharp's optimiser over Ultralytics' three groups of an ordinary model, with TrainingOptimizer's hyperparameters.
    static optim.Optimizer Reference(DetectionModel model, TrainingOptimizer ours)
    {
        var groups = ParameterGroups.Of(model);
        var lists = new[] { groups.Biases, groups.Weights, groups.NormWeights };
        var settings = ours.Optimizer.Groups;
        if (ours.Optimizer.Kind == OptimizerKind.Sgd)
            return optim.SGD(lists.Select((list, g) => new SGD.ParamGroup(list, settings[g].LearningRate, settings[g].Momentum, 0,
                settings[g].WeightDecay, true, false)).ToArray(), 0.01, 0.9, 0, 0, true, false);
        return optim.AdamW(lists.Select((list, g) => new AdamW.ParamGroup(list, settings[g].LearningRate, settings[g].Momentum,
            GroupedOptimizer.Beta2, GroupedOptimizer.Epsilon, settings[g].WeightDecay, false, false)).ToArray(), 0.01, 0.9, 0.999, 1e-8, 0, false, false);
    }

    [Theory]
    [InlineData("SGD", 0.01, 3)]     // gradients below the clip norm
    [InlineData("SGD", 5000.0, 1)]   // clipped (more steps would amplify the clip norm's rounding through BatchNorm)
    [InlineData("AdamW", 0.01, 3)]
    public void FlatStepFollowsTorchSharpsOptimiserClipAndAnEmaPerTensor(string optimizer, double gain, int steps)
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
        TrainingOptimizer Make(DetectionModel m, FlatParameters f) =>
            TrainingOptimizer.Create(m, Enum.Parse<OptimizerChoice>(optimizer), 0.01, 0.937, 0.0005, 0.1, 3, 100, 4, 1, 4, f);
        var optimizerFlat = Make(flatModel, flat);
        Assert.Same(flat, optimizerFlat.Optimizer.Flat);
        var reference = Reference(plain, optimizerFlat);
        var update = new WeightUpdate(flatModel, optimizerFlat.Optimizer, averageFlat, null);
        var trainable = plain.parameters().Where(p => p.requires_grad).ToList();

        var initial = State(plain);
        var generator = new Generator(5);
        for (int step = 0; step < steps; step++)
        {
            var images = rand(2, 3, 64, 64, generator: generator);
            Backward(plain, images, gain);
            Backward(flatModel, images, gain);
            nn.utils.clip_grad_norm_(trainable, WeightUpdate.MaxGradientNorm);
            reference.step();
            reference.zero_grad();
            averagePlain.Update(plain);
            update.Apply();
        }

        // The same per-element formulas; the clip norm is summed in another order (row norms of 3 group buffers instead of
        // one norm per parameter), so results agree to float32 rounding.
        foreach (var (what, a, b) in new[] { ("model", State(plain), State(flatModel)), ("ema", State(emaPlain), State(emaFlat)) })
            foreach (var (name, value) in a)
            {
                double difference = value.is_floating_point() ? (value - b[name]).abs().max().item<float>() : (value.SameAs(b[name]) ? 0 : 1);
                double scale = value.is_floating_point() ? Math.Max(1, value.abs().max().item<float>()) : 1;
                Assert.True(difference <= 1e-6 * scale, $"{what} {name}: differs by {difference:g3} (tolerance {1e-6 * scale:g3})");
            }
        foreach (var (name, parameter) in plain.named_parameters().Where(p => p.parameter.requires_grad))
            Assert.False(parameter.SameAs(initial[name]), $"{name} did not move");

        // The saved state round-trips: loaded into a fresh optimiser over another layout, it saves the same bytes.
        byte[] saved = Save(optimizerFlat.Optimizer);
        var (_, otherModel) = Pair();
        using var otherFlat = Flatten(otherModel);
        var reloaded = Make(otherModel, otherFlat);
        Load(reloaded.Optimizer, saved);
        Assert.Equal(saved, Save(reloaded.Optimizer));
    }

    [Theory]
    [InlineData(0.01)]
    [InlineData(5000.0)]
    public void ClipNormOfTheFlatBuffersIsTorchSharpsClipGradNorm(double gain)
    {
        using var scope = NewDisposeScope();
        var (plain, flatModel) = Pair();
        using var flat = Flatten(flatModel);
        var images = rand(2, 3, 64, 64, generator: new Generator(8));
        Backward(plain, images, gain);
        Backward(flatModel, images, gain);
        var trainable = plain.parameters().Where(p => p.requires_grad).ToList();
        double norm = nn.utils.clip_grad_norm_(trainable, WeightUpdate.MaxGradientNorm);
        Assert.True(gain > 1 ? norm > 1e4 : norm < WeightUpdate.MaxGradientNorm, $"norm {norm} for gain {gain}");
        GradientClipping.ClipNorm(flat.GradientBuffers.ToList(), WeightUpdate.MaxGradientNorm);
        var byName = plain.named_parameters().ToDictionary(p => p.name, p => p.parameter);
        foreach (var (name, parameter) in flatModel.named_parameters().Where(p => p.parameter.requires_grad))
        {
            var expected = byName[name].grad!;
            if (gain < 1) Assert.True(parameter.grad!.SameAs(expected), $"{name}: an unclipped gradient changed");
            else Assert.True(parameter.grad!.allclose(expected, rtol: 1e-5, atol: 1e-9), $"{name}: clipped differently");
        }
        if (gain > 1)   // both at the clip norm to float32 accuracy, measured in float64
            foreach (var clipped in new[] { trainable.Select(p => p.grad!).ToList(), flat.GradientBuffers.ToList() })
            {
                double total = Math.Sqrt(clipped.Sum(g => g.to(ScalarType.Float64).square().sum().item<double>()));
                Assert.True(Math.Abs(total - WeightUpdate.MaxGradientNorm) < 1e-5, $"clipped to {total:R}");
            }
    }

    /// <summary>
    /// Optimiser state is read on the CPU and copied to the parameters' device: Tensor.Load writes the bytes straight
    /// into a tensor's memory, which on a GPU would be a device address. The meta device (no memory at all) shows it
    /// without a GPU.
    /// </summary>
    [Fact]
    public void OptimiserStateLoadsOntoAParametersDevice()
    {
        using var scope = NewDisposeScope();
        var (_, model) = Pair();
        using var flat = Flatten(model);
        var optimizer = TrainingOptimizer.Create(model, OptimizerChoice.SGD, 0.01, 0.937, 0.0005, 0.1, 3, 100, 4, 1, 4, flat);
        Backward(model, rand(2, 3, 64, 64, generator: new Generator(2)), 1.0);
        new WeightUpdate(model, optimizer.Optimizer, new ModelEma(TestModels.Tiny(3)), null).Apply();
        byte[] state = Save(optimizer.Optimizer);

        var elsewhere = TestModels.Tiny(3);
        elsewhere.to(DeviceType.META);
        using var flatElsewhere = Flatten(elsewhere);
        var loaded = TrainingOptimizer.Create(elsewhere, OptimizerChoice.SGD, 0.01, 0.937, 0.0005, 0.1, 3, 100, 4, 1, 4, flatElsewhere);
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
        var optimizer = TrainingOptimizer.Create(model, OptimizerChoice.SGD, 0.01, 0.937, 0.0005, 0.1, 3, 100, 4, 1, 4, flat);
        var emaModel = TestModels.Tiny(3);
        emaModel.load_state_dict(model.state_dict());
        using var ema = new ModelEma(emaModel, tau: 2);
        var scaler = new LossScaler(initialScale: 1024);
        var update = new WeightUpdate(model, optimizer.Optimizer, ema, scaler);
        Backward(model, rand(2, 3, 64, 64, generator: new Generator(6)), 1024);
        var before = State(model);
        update.Apply(skip: true);
        foreach (var (name, value) in State(model)) Assert.True(value.SameAs(before[name]), $"{name} moved");
        Assert.Equal(512, scaler.Scale);
        Assert.Equal(1, scaler.SkippedSteps);
        Assert.Equal(0, optimizer.Optimizer.Steps);
        Assert.Equal(1, ema.Updates);
        Assert.All(flat.GradientBuffers, g => Assert.Equal(0f, g.abs().sum().item<float>()));

        Backward(model, rand(2, 3, 64, 64, generator: new Generator(6)), 512);     // the next step goes through
        update.Apply();
        Assert.Equal(1, optimizer.Optimizer.Steps);
        Assert.Equal(512, scaler.Scale);
    }

    [Fact]
    public void RefusesParametersThatCannotShareABuffer()
    {
        using var scope = NewDisposeScope();
        var a = new Parameter(zeros(3));
        var b = new Parameter(zeros(3, dtype: ScalarType.Float64));
        Assert.Contains("two dtypes", Assert.Throws<ArgumentException>(() => FlatParameters.Create(new[] { new[] { a }, new[] { b } }, null)).Message);
        Assert.Contains("two groups", Assert.Throws<ArgumentException>(() => FlatParameters.Create(new[] { new[] { a }, new[] { a } }, null)).Message);
        var frozen = new Parameter(zeros(2), requires_grad: false);
        Assert.Contains("gradient", Assert.Throws<ArgumentException>(() => FlatParameters.Create(new[] { new[] { frozen } }, null)).Message);
    }

    [Fact]
    public void TheReplicaReducesTheFlatGradientsInPlaceAndBroadcastsTheFlatBuffers()
    {
        using var scope = NewDisposeScope();
        var (_, model) = Pair();
        using var flat = Flatten(model);
        var group = new FakePeerGroup(rank: 1, peer: 3f, rootValue: 0.25f);
        using var replica = new DataParallel(group).Wrap(model, flat, syncBatchNorm: false, bucketBytes: 4096);
        Assert.All(model.state_dict().Values.Where(t => t.is_floating_point()), t => Assert.True(t.eq(0.25f).all().item<bool>())); // rank 0's
        long bytes = flat.Groups.Sum(g => g.Count) * 4;
        Assert.Equal(bytes, replica.Buckets.Sum());
        Assert.All(replica.Buckets, b => Assert.InRange(b, 1, 4096));

        // The buffers are views of one flat buffer: one broadcast reaches every BatchNorm statistic.
        using (no_grad()) flat.Buffers!.Values.fill_(9f);
        int broadcasts = group.Broadcasts;
        replica.BeforeForward();
        Assert.Equal(broadcasts + 1, group.Broadcasts);
        var statistics = model.named_buffers().Where(b => b.buffer.is_floating_point()).ToList();
        Assert.NotEmpty(statistics);
        Assert.All(statistics, b => Assert.True(b.buffer.eq(0.25f).all().item<bool>(), b.name));

        // The all-reduce averages the gradients where backward wrote them and the optimiser reads them.
        Backward(model, rand(2, 3, 64, 64, generator: new Generator(3)), 1.0);
        var parameters = model.named_parameters().Where(p => p.parameter.requires_grad).ToList();
        var expected = parameters.Select(p => p.parameter.grad!.add(3f).div(2)).ToList();
        int reduces = group.AllReduces;
        replica.AverageGradients(new StepTimer());
        Assert.Equal(replica.Buckets.Count, group.AllReduces - reduces);
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
        Assert.False(scaler.UnscaleAndCheck(flat.GradientBuffers.ToList(), CPU));
        var byName = plain.named_parameters().ToDictionary(p => p.name, p => p.parameter);
        foreach (var (name, parameter) in flatModel.named_parameters().Where(p => p.parameter.requires_grad))
            Assert.True(parameter.grad!.SameAs(byName[name].grad!.mul(1.0 / 1024)), $"{name}: unscaled gradient");

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
