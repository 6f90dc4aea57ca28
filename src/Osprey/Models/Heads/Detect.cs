using Osprey.Models.Blocks;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace Osprey.Models.Heads;

/// <summary>
/// Ultralytics YOLOv8 <c>Detect</c> head (<c>legacy=True</c>): both branches of every level are two 3×3
/// <see cref="Conv"/> blocks before their 1×1 output (<c>cv2[i]</c> → 4·reg_max DFL logits, <c>cv3[i]</c> → nc logits).
/// Everything else is <see cref="DetectionHead"/>'s. Not sealed: a head that differs only in a branch (YOLO11's
/// depthwise-separable class branch) overrides <see cref="ClassLayers"/>.
/// </summary>
public class Detect : DetectionHead
{
    /// <param name="nc">Number of classes.</param>
    /// <param name="inputChannels">Channels of each input level (P3, P4, P5).</param>
    /// <param name="regMax">DFL bins per side.</param>
    public Detect(int nc, IReadOnlyList<long> inputChannels, int regMax = DefaultRegMax)
        : this(nameof(Detect), nc, inputChannels, regMax)
    {
    }

    /// <summary>For subclasses: the same head under another module name.</summary>
    protected Detect(string name, int nc, IReadOnlyList<long> inputChannels, int regMax)
        : base(name, nc, inputChannels, regMax)
    {
    }

    /// <summary>Conv(x, c2, 3), Conv(c2, c2, 3).</summary>
    protected override Module<Tensor, Tensor>[] BoxLayers(long inputChannels, long hiddenChannels) =>
        new Module<Tensor, Tensor>[] { new Conv(inputChannels, hiddenChannels, 3), new Conv(hiddenChannels, hiddenChannels, 3) };

    /// <summary>Conv(x, c3, 3), Conv(c3, c3, 3).</summary>
    protected override Module<Tensor, Tensor>[] ClassLayers(long inputChannels, long hiddenChannels) =>
        new Module<Tensor, Tensor>[] { new Conv(inputChannels, hiddenChannels, 3), new Conv(hiddenChannels, hiddenChannels, 3) };
}
