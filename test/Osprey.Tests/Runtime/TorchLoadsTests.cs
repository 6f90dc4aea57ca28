
using TorchSharp;

namespace Osprey.Tests.Runtime;

public class TorchLoadsTests
{
    [Fact]
    public void TorchSharpLoadsAndComputes()
    {
        using var scope = torch.NewDisposeScope();
        var a = torch.tensor(new float[] { 1, 2, 3 });
        var b = torch.tensor(new float[] { 4, 5, 6 });
        Assert.Equal(32f, torch.dot(a, b).item<float>());
        Assert.StartsWith("2.10", Osprey.Runtime.TorchRuntime.LibTorchVersion);
    }
}
