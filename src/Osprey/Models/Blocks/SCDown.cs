using Osprey.Onnx;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace Osprey.Models.Blocks;

/// <summary>
/// Ultralytics <c>SCDown</c> (YOLOv10): spatial-channel decoupled downsampling, a pointwise Conv(c1, c2, 1) then a
/// depthwise Conv(c2, c2, k, s, g=c2, act=False).
/// </summary>
public sealed class SCDown : Module<Tensor, Tensor>, IOnnxBlock
{
    private readonly Conv cv1;
    private readonly Conv cv2;

    /// <param name="inChannels">Input channels.</param>
    /// <param name="outChannels">Output channels.</param>
    /// <param name="kernel">Depthwise kernel.</param>
    /// <param name="stride">Depthwise stride.</param>
    public SCDown(long inChannels, long outChannels, long kernel, long stride) : base(nameof(SCDown))
    {
        cv1 = new Conv(inChannels, outChannels, 1, 1);
        cv2 = new Conv(outChannels, outChannels, kernel, stride, groups: outChannels, activation: false);
        RegisterComponents();
    }

    /// <inheritdoc/>
    public override Tensor forward(Tensor x) => cv2.call(cv1.call(x)); // (b, c1, h, w) → (b, c2, h/s, w/s)

    /// <summary>cv1, cv2.</summary>
    public string Emit(OnnxGraph graph, string prefix, IReadOnlyList<string> inputs) =>
        cv2.Emit(graph, prefix + ".cv2", [cv1.Emit(graph, prefix + ".cv1", inputs)]);
}
