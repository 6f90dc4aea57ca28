using Osprey.Plotting;

namespace Osprey.Tests.Plotting;

/// <summary>scipy.ndimage.gaussian_filter1d semantics (mode 'reflect', truncate 4).</summary>
public class GaussianFilterTests
{
    [Fact]
    public void ImpulseSpreadsAsTheNormalisedKernelWithReflectedTails()
    {
        // σ = 1: radius 4, weights e^(−k²/2) / 2.5066282… ; impulse at index 3 of 7.
        // out[3] = w0 = 0.3989423; out[0] = w3 + w4 (position −4 reflects onto index 3) = 0.0045662.
        var result = GaussianFilter.Filter1D(new double[] { 0, 0, 0, 1, 0, 0, 0 }, 1);
        double norm = Enumerable.Range(-4, 9).Sum(k => Math.Exp(-0.5 * k * k));
        Assert.Equal(1 / norm, result[3], 12);
        Assert.Equal((Math.Exp(-4.5) + Math.Exp(-8)) / norm, result[0], 12);
        Assert.Equal(result[2], result[4], 12);
        Assert.Equal(1.0, result.Sum(), 12);
    }

    [Fact]
    public void ConstantsStayConstantEvenWhenShorterThanTheKernel()
    {
        Assert.All(GaussianFilter.Filter1D(new double[] { 2.5, 2.5 }, 3), v => Assert.Equal(2.5, v, 12));
        Assert.Equal(new[] { 0, 1, 1, 0, 0, 0 }, new[] { -1, 1, 2, 3, -4, 4 }.Select(i => GaussianFilter.Reflect(i, 2)));
    }
}
