using Osprey.Config;
using Osprey.Runtime;
using Osprey.Training;
using static TorchSharp.torch;

namespace Osprey.Tests.Training;

public class MixedPrecisionTests
{
    [Fact]
    public void AmpIsOffOnTheCpuUnlessADtypeIsGivenExplicitly()
    {
        var cpu = MixedPrecision.Resolve(amp: true, AmpDtype.Auto, ampDtypeGiven: false, cuda: false, capabilityMajor: null);
        Assert.Equal(ScalarType.Float32, cpu.Policy.ComputeType);
        Assert.False(cpu.Policy.ChannelsLast);
        Assert.False(cpu.UsesLossScaler);

        var forced = MixedPrecision.Resolve(amp: true, AmpDtype.BF16, ampDtypeGiven: true, cuda: false, capabilityMajor: null);
        Assert.Equal(ScalarType.BFloat16, forced.Policy.ComputeType);
        Assert.False(forced.Policy.ChannelsLast);
        var off = MixedPrecision.Resolve(amp: false, AmpDtype.BF16, ampDtypeGiven: true, cuda: false, capabilityMajor: null);
        Assert.Equal(ScalarType.Float32, off.Policy.ComputeType);
    }

    [Theory]
    [InlineData(9, "auto", ScalarType.BFloat16)]   // H100
    [InlineData(8, "auto", ScalarType.BFloat16)]   // A100
    [InlineData(7, "auto", ScalarType.Float16)]    // V100, T4: no bf16 tensor cores
    [InlineData(null, "auto", ScalarType.Float16)] // capability unknown: Ultralytics' fp16
    [InlineData(9, "fp16", ScalarType.Float16)]
    [InlineData(7, "bfloat16", ScalarType.BFloat16)]
    public void OnCudaBf16WhereSupportedElseFp16WithTheScalerAlwaysChannelsLast(int? major, string text, ScalarType expected)
    {
        var dtype = ArgsParser.Parse(new[] { $"amp_dtype={text}" }).AmpDtype;
        var choice = MixedPrecision.Resolve(amp: true, dtype, ampDtypeGiven: text != "auto", cuda: true, capabilityMajor: major);
        Assert.Equal(expected, choice.Policy.ComputeType);
        Assert.True(choice.Policy.ChannelsLast);
        Assert.Equal(expected == ScalarType.Float16, choice.UsesLossScaler);

        var fp32 = MixedPrecision.Resolve(amp: false, dtype, ampDtypeGiven: true, cuda: true, capabilityMajor: major);
        Assert.Equal(ScalarType.Float32, fp32.Policy.ComputeType);
        Assert.True(fp32.Policy.ChannelsLast);
    }

    [Fact]
    public void ABadDtypeNamesTheChoices()
    {
        var e = Assert.Throws<ArgumentsException>(() => ArgsParser.Parse(new[] { "amp_dtype=int8" }));
        Assert.Contains("amp_dtype=int8", e.Message);
        Assert.Contains("bf16", e.Message);
    }

    [Fact]
    public void CudnnSwitchesReachLibtorchsContext()
    {
        Assert.True(CudnnSettings.IsAvailable);
        bool benchmark = CudnnSettings.Benchmark, deterministic = CudnnSettings.Deterministic;
        try
        {
            CudnnSettings.ConfigureForTraining(deterministic: false);
            Assert.True(CudnnSettings.Benchmark);
            Assert.False(CudnnSettings.Deterministic);
            CudnnSettings.Benchmark = false;
            CudnnSettings.Deterministic = true;
            Assert.False(CudnnSettings.Benchmark);
            Assert.True(CudnnSettings.Deterministic);
        }
        finally
        {
            CudnnSettings.Benchmark = benchmark;
            CudnnSettings.Deterministic = deterministic;
        }
    }

    [Fact]
    public void NoCudaRuntimeMeansNoCapability() => Assert.Null(CudaCapability.Of(0)); // the CPU suite has no libcudart
}
