namespace Osprey.Models.Blocks;

/// <summary>
/// Ultralytics <c>C2fCIB</c> (YOLOv10): a <see cref="C2f"/> whose blocks are <see cref="CIB"/>(c, c, shortcut, e=1.0, lk).
/// </summary>
public sealed class C2fCIB : C2f
{
    /// <param name="inChannels">Input channels.</param>
    /// <param name="outChannels">Output channels.</param>
    /// <param name="repeats">Number of CIBs.</param>
    /// <param name="shortcut">Residual CIBs.</param>
    /// <param name="largeKernel">CIBs with a RepVGGDW (lk).</param>
    /// <param name="expansion">Hidden channels c = int(outChannels × expansion).</param>
    public C2fCIB(long inChannels, long outChannels, int repeats = 1, bool shortcut = false, bool largeKernel = false,
        double expansion = 0.5)
        : base(nameof(C2fCIB), inChannels, outChannels, repeats, expansion,
            hidden => new CIB(hidden, hidden, shortcut, 1.0, largeKernel))
    {
    }
}
