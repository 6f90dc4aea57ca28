using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace Osprey.Models.Blocks;

/// <summary>
/// Ultralytics <c>C3k2</c> (YOLO11): a <see cref="C2f"/> (cv1 to 2c, split, n blocks chained on the last part, concat,
/// cv2) whose blocks are <see cref="C3k"/>(c, c, 2, shortcut, g) when <c>c3k</c>, else
/// <see cref="Bottleneck"/>(c, c, shortcut, g) with its defaults (3×3 kernels, e = 0.5). Keys <c>m.{i}.cv1…</c> for
/// bottlenecks, <c>m.{i}.m.{j}.cv1…</c> inside a C3k, as Ultralytics'.
/// </summary>
public sealed class C3k2 : C2f
{
    /// <param name="inChannels">Input channels.</param>
    /// <param name="outChannels">Output channels.</param>
    /// <param name="repeats">Number of blocks.</param>
    /// <param name="c3k">C3k blocks instead of bottlenecks (parse_model forces it for scales m, l, x).</param>
    /// <param name="expansion">Hidden channels c = int(outChannels × expansion).</param>
    /// <param name="groups">Groups of the blocks' grouped convolutions.</param>
    /// <param name="shortcut">Residual blocks.</param>
    public C3k2(long inChannels, long outChannels, int repeats = 1, bool c3k = false, double expansion = 0.5,
        long groups = 1, bool shortcut = true)
        : base(nameof(C3k2), inChannels, outChannels, repeats, expansion, hidden => Block(hidden, c3k, groups, shortcut))
    {
        UsesC3k = c3k;
    }

    /// <summary>True when the blocks are C3k.</summary>
    public bool UsesC3k { get; }

    private static Module<Tensor, Tensor> Block(long hidden, bool c3k, long groups, bool shortcut) => c3k
        ? new C3k(hidden, hidden, 2, shortcut, groups)
        : new Bottleneck(hidden, hidden, shortcut, groups);
}
