using Osprey.Models.Blocks;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace Osprey.Models.Heads;

/// <summary>
/// Ultralytics' <c>Detect</c> with <c>legacy=False</c> (YOLO11, and every model whose YAML has a C3k2 or C2fCIB row):
/// the box branch as YOLOv8's, the class branch depthwise-separable, cv3[i] = Sequential(Sequential(DWConv(x, x, 3),
/// Conv(x, c3, 1)), Sequential(DWConv(c3, c3, 3), Conv(c3, c3, 1)), Conv2d(c3, nc, 1)); keys
/// <c>cv3.{i}.{0|1}.{0: DWConv | 1: Conv}</c> and <c>cv3.{i}.2</c>, as Ultralytics'.
/// </summary>
public sealed class Yolo11Detect : Detect
{
    /// <param name="nc">Number of classes.</param>
    /// <param name="inputChannels">Channels of each input level (P3, P4, P5).</param>
    /// <param name="regMax">DFL bins per side.</param>
    public Yolo11Detect(int nc, IReadOnlyList<long> inputChannels, int regMax = DefaultRegMax)
        : base(nameof(Detect), nc, inputChannels, regMax)
    {
    }

    /// <summary>Sequential(DWConv(x, x, 3), Conv(x, c3, 1)), Sequential(DWConv(c3, c3, 3), Conv(c3, c3, 1)).</summary>
    protected override Module<Tensor, Tensor>[] ClassLayers(long inputChannels, long hiddenChannels) => new Module<Tensor, Tensor>[]
    {
        Sequential(DWConv.Create(inputChannels, inputChannels, 3), new Conv(inputChannels, hiddenChannels, 1)),
        Sequential(DWConv.Create(hiddenChannels, hiddenChannels, 3), new Conv(hiddenChannels, hiddenChannels, 1)),
    };
}
