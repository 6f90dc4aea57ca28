using Osprey.Config;
using Osprey.Tests.Models;
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
        var optimizer = TrainingOptimizer.Create(model, OptimizerChoice.SGD, 0.1, 0.9, 0.01, 0.0, 2, 1, 8, 1, 8, FlatParameters.For(model));
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

    /// <summary>
    /// The checkpoint's model entries are read into the model's own tensors. TorchSharp's Module.load moves a model that
    /// is not on the CPU to the CPU and back, which makes new Parameter objects (the optimiser and the flat layout would
    /// keep the old ones); a model on the meta device shows that without a GPU.
    /// </summary>
    [Fact]
    public void ModelEntriesLoadIntoTheSameTensors()
    {
        using var scope = NewDisposeScope();
        torch.manual_seed(3);
        var saved = Osprey.Tests.Models.TestModels.Tiny(3);
        Osprey.Tests.Models.TestModels.RandomiseBatchNorms(saved, seed: 2);
        byte[] bytes;
        using (var stream = new MemoryStream())
        {
            using (var writer = new BinaryWriter(stream, System.Text.Encoding.UTF8, leaveOpen: true)) saved.save(writer);
            bytes = stream.ToArray();
        }

        var onCpu = Osprey.Tests.Models.TestModels.Tiny(3);
        var before = onCpu.parameters().ToList();
        using (var reader = new BinaryReader(new MemoryStream(bytes))) Checkpoint.LoadInPlace(onCpu, reader, "test");
        Assert.Equal(before, onCpu.parameters().ToList(), ReferenceEqualityComparer.Instance);
        var expected = saved.state_dict();
        foreach (var (name, value) in onCpu.state_dict()) Assert.True(value.SameAs(expected[name]), name);

        var elsewhere = Osprey.Tests.Models.TestModels.Tiny(3);
        elsewhere.to(DeviceType.META);
        before = elsewhere.parameters().ToList();
        using (var reader = new BinaryReader(new MemoryStream(bytes))) Checkpoint.LoadInPlace(elsewhere, reader, "test");
        Assert.Equal(before, elsewhere.parameters().ToList(), ReferenceEqualityComparer.Instance);
        Assert.All(elsewhere.parameters(), p => Assert.Equal(DeviceType.META, p.device_type));

        var other = nn.Sequential(nn.Linear(2, 2));
        using var mismatch = new BinaryReader(new MemoryStream(bytes));
        var e = Assert.Throws<InvalidDataException>(() => Checkpoint.LoadInPlace(other, mismatch, "last.ckpt (model)"));
        Assert.StartsWith("last.ckpt (model): ", e.Message);
    }
}
