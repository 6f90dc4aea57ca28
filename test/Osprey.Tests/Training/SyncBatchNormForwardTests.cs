using Osprey.Distributed;
using Osprey.Training;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Osprey.Tests.Training;

/// <summary><see cref="SyncBatchNorm.Forward"/> at world 1 against libtorch's own batch norm.</summary>
public class SyncBatchNormForwardTests
{
    static (BatchNorm2d Synced, BatchNorm2d Native, Tensor X) Setup()
    {
        torch.manual_seed(4);
        var synced = nn.BatchNorm2d(3, eps: 1e-3, momentum: 0.03);
        var native = nn.BatchNorm2d(3, eps: 1e-3, momentum: 0.03);
        using (no_grad())
        {
            synced.weight!.copy_(tensor(new float[] { 0.5f, 1.5f, 2f }));
            synced.bias!.copy_(tensor(new float[] { -1f, 0f, 1f }));
            native.load_state_dict(synced.state_dict());
        }
        synced.train();
        native.train();
        return (synced, native, randn(2, 3, 5, 5) * 3 + 1);
    }

    [Fact]
    public void MatchesNativeBatchNormAndItsRunningStatistics()
    {
        using var scope = NewDisposeScope();
        var (synced, native, x) = Setup();
        using var group = new SingleProcessGroup();
        var y = SyncBatchNorm.Forward(synced, x, group);
        var expected = native.call(x);
        Assert.Equal(ScalarType.Float32, y.dtype);
        Assert.True(y.allclose(expected, rtol: 1e-5, atol: 1e-5));
        // running_var takes the unbiased variance (n / (n − 1) with n = 2·5·5), as libtorch's
        Assert.True(synced.running_mean!.allclose(native.running_mean!, rtol: 1e-6, atol: 1e-7));
        Assert.True(synced.running_var!.allclose(native.running_var!, rtol: 1e-6, atol: 1e-7));
        Assert.Equal(1, synced.num_batches_tracked!.item<long>());
    }

    [Fact]
    public void LowPrecisionInputGivesLowPrecisionOutput()
    {
        using var scope = NewDisposeScope();
        var (synced, native, x) = Setup();
        using var group = new SingleProcessGroup();
        var y = SyncBatchNorm.Forward(synced, x.to(ScalarType.BFloat16), group);
        Assert.Equal(ScalarType.BFloat16, y.dtype);            // the fp32 affine parameters do not promote the activations
        var expected = native.call(x);
        Assert.True(y.to(ScalarType.Float32).allclose(expected, rtol: 0.02, atol: 0.05));
    }
}
