namespace Osprey.Models.Blocks;

/// <summary>
/// Ultralytics <c>C3k</c> (YOLO11): a <see cref="C3"/> whose n bottlenecks use k×k kernels in both convolutions
/// (Bottleneck(c_, c_, shortcut, g, k=(k, k), e=1.0)); C3k2 builds it with n = 2, e = 0.5, k = 3.
/// </summary>
public sealed class C3k : C3
{
    /// <param name="inChannels">Input channels.</param>
    /// <param name="outChannels">Output channels.</param>
    /// <param name="repeats">Number of bottlenecks.</param>
    /// <param name="shortcut">Residual bottlenecks.</param>
    /// <param name="groups">Groups of the bottlenecks' second convolution.</param>
    /// <param name="expansion">Hidden channels c_ = int(outChannels × expansion).</param>
    /// <param name="kernel">Bottleneck kernel k.</param>
    public C3k(long inChannels, long outChannels, int repeats = 1, bool shortcut = true, long groups = 1,
        double expansion = 0.5, long kernel = 3)
        : base(nameof(C3k), inChannels, outChannels, repeats, shortcut, groups, expansion, kernel, kernel)
    {
    }
}
