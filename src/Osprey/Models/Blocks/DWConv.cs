namespace Osprey.Models.Blocks;

/// <summary>
/// Ultralytics <c>DWConv</c>: a <see cref="Conv"/> with groups = gcd(c_in, c_out) (depthwise when c_in == c_out). It is
/// a Conv in every respect (state-dict keys <c>conv.weight</c>, <c>bn.*</c>; fusion; cast policy; ONNX), so it is made
/// here as one rather than wrapped.
/// </summary>
public static class DWConv
{
    /// <summary>Conv(c_in, c_out, k, s, groups = gcd(c_in, c_out), d, act).</summary>
    /// <param name="inChannels">Input channels.</param>
    /// <param name="outChannels">Output channels.</param>
    /// <param name="kernel">Square kernel size.</param>
    /// <param name="stride">Stride.</param>
    /// <param name="dilation">Dilation.</param>
    /// <param name="activation">SiLU when true.</param>
    public static Conv Create(long inChannels, long outChannels, long kernel = 1, long stride = 1, long dilation = 1,
        bool activation = true) =>
        new(inChannels, outChannels, kernel, stride, groups: GreatestCommonDivisor(inChannels, outChannels),
            dilation: dilation, activation: activation);

    /// <summary>Python's math.gcd for positive channel counts.</summary>
    public static long GreatestCommonDivisor(long a, long b)
    {
        while (b != 0) (a, b) = (b, a % b);
        return Math.Abs(a);
    }
}
