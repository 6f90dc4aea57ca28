using Osprey.Training;
using TorchSharp;
using static TorchSharp.torch;

namespace Osprey.Tests.Training;

public class CheckpointTests
{
    sealed record Parts(nn.Module Model, nn.Module Ema, ModelEma Averager, TrainingOptimizer Optimizer);

    static Parts Build(int seed)
    {
        torch.manual_seed(seed);
        var model = nn.Sequential(("conv", nn.Conv2d(3, 4, 3, bias: false)), ("bn", nn.BatchNorm2d(4)), ("head", nn.Conv2d(4, 2, 1)));
        var ema = nn.Sequential(("conv", nn.Conv2d(3, 4, 3, bias: false)), ("bn", nn.BatchNorm2d(4)), ("head", nn.Conv2d(4, 2, 1)));
        ema.load_state_dict(model.state_dict());
        var optimizer = TrainingOptimizer.Create(model, "SGD", 0.1, 0.9, 0.01, 0.0, 2, 1, 8, 1, 8);
        return new(model, ema, new ModelEma(ema), optimizer);
    }

    static void Step(Parts p, int seed)
    {
        using var scope = NewDisposeScope();
        var generator = new Generator((ulong)seed);
        var x = randn(new long[] { 2, 3, 8, 8 }, generator: generator);
        p.Model.train();
        var loss = ((nn.Module<Tensor, Tensor>)p.Model).forward(x).square().mean();
        p.Optimizer.Optimizer.ZeroGrad();
        loss.backward();
        p.Optimizer.Optimizer.Step();
        p.Averager.Update(p.Model);
    }

    static Dictionary<string, float[]> Snapshot(nn.Module m) =>
        m.state_dict().ToDictionary(kv => kv.Key, kv => kv.Value.to_type(ScalarType.Float32).data<float>().ToArray());

    [Fact]
    public void ResumingFromACheckpointContinuesBitExactly()
    {
        string path = Path.Combine(Directory.CreateTempSubdirectory("osprey-ckpt").FullName, "last.ckpt");
        var a = Build(1);
        Step(a, 10);
        var state = new TrainingState(1, 0, 5, 5, 0.25, 0, a.Averager.Updates, "epochs: 3\n", "runs/detect/train");
        torch.manual_seed(123);
        Checkpoint.Save(path, a.Model, a.Ema, a.Optimizer.Optimizer, state);
        float afterSave = torch.rand(1).item<float>();
        Step(a, 11); // uses the momentum buffers saved above

        var b = Build(2); // different initial weights: everything must come from the file
        var restored = Checkpoint.Load(path, b.Model, b.Ema, b.Optimizer.Optimizer);
        Assert.Equal(afterSave, torch.rand(1).item<float>()); // torch RNG restored
        Assert.Equal(state, restored);
        var bAverager = new ModelEma(b.Ema, updates: restored.EmaUpdates);
        Step(b with { Averager = bAverager }, 11);

        Assert.Equal(Snapshot(a.Model), Snapshot(b.Model));
        Assert.Equal(Snapshot(a.Ema), Snapshot(b.Ema));
    }

    [Fact]
    public void TruncatedCheckpointIsAClearError()
    {
        string dir = Directory.CreateTempSubdirectory("osprey-ckpt").FullName;
        string path = Path.Combine(dir, "last.ckpt");
        var a = Build(1);
        Checkpoint.Save(path, a.Model, a.Ema, a.Optimizer.Optimizer, new TrainingState(0, 0, 0, 0, null, 0, 0, "", dir));
        byte[] bytes = File.ReadAllBytes(path);
        string broken = Path.Combine(dir, "broken.ckpt");
        File.WriteAllBytes(broken, bytes[..(bytes.Length / 2)]);
        var e = Assert.Throws<InvalidDataException>(() => Checkpoint.ReadState(broken));
        Assert.Contains(broken, e.Message);
    }
}
