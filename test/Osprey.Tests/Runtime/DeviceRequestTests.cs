using Osprey.Runtime;
using TorchSharp;

namespace Osprey.Tests.Runtime;

public class DeviceRequestTests
{
    [Theory]
    [InlineData("cpu", false, new int[0])]
    [InlineData("CPU", false, new int[0])]
    [InlineData("0", true, new[] { 0 })]
    [InlineData("cuda", true, new[] { 0 })]
    [InlineData("cuda:1", true, new[] { 1 })]
    [InlineData("0,1,2,3", true, new[] { 0, 1, 2, 3 })]
    [InlineData(" 2, 3 ", true, new[] { 2, 3 })]
    public void ParsesUltralyticsDeviceStrings(string text, bool cuda, int[] indices)
    {
        var request = DeviceRequest.Parse(text);
        Assert.Equal(cuda, request.IsCuda);
        Assert.Equal(indices, request.CudaIndices);
    }

    [Theory]
    [InlineData("gpu")]
    [InlineData("0,0")]
    [InlineData("-1")]
    public void RejectsBadDeviceStrings(string text) =>
        Assert.Throws<DeviceException>(() => DeviceRequest.Parse(text));

    [Fact]
    public void DefaultFollowsCudaAvailabilityAndCudaRequestFailsClearlyWithoutIt()
    {
        if (TorchBackend.CudaAvailable)
        {
            Assert.Equal(DeviceType.CUDA, DeviceRequest.Parse(null).Resolve().type);
            Assert.Equal(DeviceType.CUDA, DeviceRequest.Parse("0").Resolve().type);
            return;
        }
        Assert.Equal(torch.CPU, DeviceRequest.Parse(null).Resolve());
        var e = Assert.Throws<DeviceException>(() => DeviceRequest.Parse("0").Resolve());
        Assert.Contains("asks for CUDA, but CUDA is not available", e.Message);
        Assert.Contains("device=cpu", e.Message);
    }

    [Theory]
    // one process: the index given
    [InlineData(new[] { 0 }, 0, 1, 8, 0)]
    [InlineData(new[] { 3 }, 0, 1, 8, 3)]
    // device=0,1,2,3 (Osprey's own launch, or a list under mpirun): each local rank its own
    [InlineData(new[] { 0, 1, 2, 3 }, 2, 4, 8, 2)]
    [InlineData(new[] { 4, 5 }, 1, 2, 8, 5)]
    // one index or none, several processes on the host (mpirun/srun/torchrun): cuda:LOCAL_RANK, as Ultralytics
    [InlineData(new[] { 0 }, 3, 4, 8, 3)]
    // Slurm --gpus-per-task=1: each process sees one GPU, its own
    [InlineData(new[] { 0 }, 3, 4, 1, 0)]
    public void EachLocalRankTakesItsGpu(int[] indices, int localRank, int localWorldSize, int visible, int expected) =>
        Assert.Equal(expected, DeviceRequest.CudaIndexFor(indices, localRank, localWorldSize, visible));

    [Fact]
    public void AMissingGpuIsAClearError()
    {
        var e = Assert.Throws<DeviceException>(() => DeviceRequest.CudaIndexFor(new[] { 2 }, 0, 1, 2));
        Assert.Equal("device=2: GPU 2 does not exist (this machine has 2)", e.Message);
        e = Assert.Throws<DeviceException>(() => DeviceRequest.CudaIndexFor(new[] { 0 }, 3, 4, 2));
        Assert.StartsWith("local rank 3 of 4 takes GPU 3, which does not exist (this machine has 2)", e.Message);
    }
}
