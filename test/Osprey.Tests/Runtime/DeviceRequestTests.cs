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
}
