using Osprey.Onnx;
using TorchSharp.Modules;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace Osprey.Models.Blocks;

/// <summary>Ultralytics <c>SPPF</c>: cv1 (1×1, c_in/2), three chained k×k max pools, concat 4, cv2 (1×1).</summary>
public sealed class SPPF : Module<Tensor, Tensor>, IOnnxBlock
{
    private readonly Conv cv1;
    private readonly Conv cv2;
    private readonly MaxPool2d m;
    private readonly long kernel;

    /// <param name="inChannels">Input channels.</param>
    /// <param name="outChannels">Output channels.</param>
    /// <param name="kernel">Max-pool kernel (stride 1, padding k/2).</param>
    public SPPF(long inChannels, long outChannels, long kernel = 5) : base(nameof(SPPF))
    {
        long hidden = inChannels / 2;
        this.kernel = kernel;
        cv1 = new Conv(inChannels, hidden, 1, 1);
        cv2 = new Conv(hidden * 4, outChannels, 1, 1);
        m = MaxPool2d(kernel, stride: 1, padding: kernel / 2);
        RegisterComponents();
    }

    /// <inheritdoc/>
    public override Tensor forward(Tensor x)
    {
        var y0 = cv1.call(x);    // (b, c_in/2, h, w)
        var y1 = m.call(y0);
        var y2 = m.call(y1);
        var y3 = m.call(y2);
        return cv2.call(cat(new[] { y0, y1, y2, y3 }, 1)); // (b, 2·c_in, h, w) → (b, c_out, h, w)
    }

    /// <summary>cv1, three MaxPool nodes, Concat, cv2.</summary>
    public string Emit(OnnxGraph graph, string prefix, IReadOnlyList<string> inputs)
    {
        var ys = new List<string> { cv1.Emit(graph, prefix + ".cv1", inputs) };
        for (int j = 0; j < 3; j++)
            ys.Add(graph.Node("MaxPool", $"/{prefix}/m{(j == 0 ? "" : "_" + j)}/MaxPool", [ys[^1]],
                OnnxGraph.Attr("ceil_mode", 0), OnnxGraph.Attr("dilations", 1, 1), OnnxGraph.Attr("kernel_shape", kernel, kernel),
                OnnxGraph.Attr("pads", kernel / 2, kernel / 2, kernel / 2, kernel / 2), OnnxGraph.Attr("strides", 1, 1)));
        return cv2.Emit(graph, prefix + ".cv2", [graph.Node("Concat", $"/{prefix}/Concat", ys, OnnxGraph.Attr("axis", 1))]);
    }
}
