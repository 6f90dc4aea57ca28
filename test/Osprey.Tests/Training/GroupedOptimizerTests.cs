using Osprey.Training;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Osprey.Tests.Training;

/// <summary>Our SGD/AdamW against TorchSharp's implementations of PyTorch's rules, as an independent reference.</summary>
public class GroupedOptimizerTests
{
    static (nn.Module Model, Parameter[] Parameters) Model(int seed)
    {
        torch.manual_seed(seed);
        var model = nn.Sequential(nn.Linear(4, 3), nn.Linear(3, 2));
        return (model, model.parameters().ToArray());
    }

    // The same random gradients for a step: assigned (TorchSharp's optimisers), or written into the flat layout's views.
    static void FeedGradients(Parameter[] parameters, int step)
    {
        var generator = new Generator((ulong)(100 + step));
        foreach (var p in parameters)
        {
            var gradient = randn(p.shape, generator: generator);
            if (p.grad is { } view) view.copy_(gradient);
            else p.grad = gradient;
        }
    }

    // Our optimiser over these groups, laid out flat as the trainer lays them out.
    static GroupedOptimizer Ours(OptimizerKind kind, params OptimizerGroup[] groups) =>
        new(kind, groups, FlatParameters.Create(groups.Select(g => g.Parameters).ToArray(), null));

    static void AssertSame(Parameter[] a, Parameter[] b)
    {
        for (int i = 0; i < a.Length; i++)
            Assert.True(a[i].allclose(b[i], rtol: 1e-5, atol: 1e-7), $"parameter {i} differs: {(a[i] - b[i]).abs().max().item<float>()}");
    }

    [Fact]
    public void SgdNesterovMatchesTorchSharp()
    {
        var (_, reference) = Model(1);
        var (_, ours) = Model(1);
        var torchSgd = torch.optim.SGD(new[]
        {
            new SGD.ParamGroup(reference[..2], 0.05, 0.9, 0, 0.01, true, false),
            new SGD.ParamGroup(reference[2..], 0.05, 0.9, 0, 0, true, false),
        }, 0.05, 0.9, 0, 0, true, false);
        var ourSgd = Ours(OptimizerKind.Sgd, new OptimizerGroup(ours[..2], 0.05, 0.9, 0.01), new OptimizerGroup(ours[2..], 0.05, 0.9, 0));
        for (int step = 0; step < 5; step++)
        {
            FeedGradients(reference, step);
            FeedGradients(ours, step);
            torchSgd.step();
            ourSgd.Step();
        }
        AssertSame(reference, ours);
    }

    [Fact]
    public void AdamWMatchesTorchSharp()
    {
        var (_, reference) = Model(2);
        var (_, ours) = Model(2);
        var torchAdam = torch.optim.AdamW(new[]
        {
            new AdamW.ParamGroup(reference[..2], 0.01, 0.9, 0.999, 1e-8, 0.05, false, false),
            new AdamW.ParamGroup(reference[2..], 0.01, 0.9, 0.999, 1e-8, 0, false, false),
        }, 0.01, 0.9, 0.999, 1e-8, 0, false, false);
        var ourAdam = Ours(OptimizerKind.AdamW, new OptimizerGroup(ours[..2], 0.01, 0.9, 0.05), new OptimizerGroup(ours[2..], 0.01, 0.9, 0));
        for (int step = 0; step < 5; step++)
        {
            FeedGradients(reference, step);
            FeedGradients(ours, step);
            torchAdam.step();
            ourAdam.Step();
        }
        AssertSame(reference, ours);
    }

    [Fact]
    public void SavedStateResumesIdentically()
    {
        var (_, a) = Model(3);
        var (_, b) = Model(4);
        var first = Ours(OptimizerKind.AdamW, new OptimizerGroup(a, 0.01, 0.9, 0.01));
        FeedGradients(a, 0);
        first.Step();
        using var stream = new MemoryStream();
        using (var writer = new BinaryWriter(stream, System.Text.Encoding.UTF8, leaveOpen: true)) first.Save(writer);
        using (no_grad()) for (int i = 0; i < a.Length; i++) b[i].copy_(a[i]);
        var second = Ours(OptimizerKind.AdamW, new OptimizerGroup(b, 0.5, 0.5, 0.5));
        stream.Position = 0;
        using (var reader = new BinaryReader(stream)) second.Load(reader);
        Assert.Equal((0.01, 0.9, 0.01, 1L), (second.Groups[0].LearningRate, second.Groups[0].Momentum, second.Groups[0].WeightDecay, second.Steps));
        FeedGradients(a, 1);
        FeedGradients(b, 1);
        first.Step();
        second.Step();
        for (int i = 0; i < a.Length; i++) Assert.True(a[i].eq(b[i]).all().item<bool>(), $"parameter {i} differs after resume");
    }
}
