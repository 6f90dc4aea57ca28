using Osprey.Runtime;
using static TorchSharp.torch;

namespace Osprey.Evaluation;

/// <summary>
/// What Ultralytics' <c>non_max_suppression</c> does with an end-to-end model's output (<c>end2end=True</c> or a last
/// dimension of 6, utils/nms.py): no NMS; per image the rows whose score is strictly above the confidence threshold,
/// the first <c>max_det</c> of them, then only the wanted classes. The IoU threshold, agnostic and multi-label settings
/// do not apply.
/// </summary>
public static class EndToEndDetections
{
    /// <summary>Selects the detections of an end-to-end output.</summary>
    /// <param name="prediction">shape(b, k, 6): [x1, y1, x2, y2, score, class] rows by descending score (the head's
    /// top-k, <see cref="Models.Heads.V10Detect"/>, or an end-to-end ONNX export's <c>output0</c>).</param>
    /// <param name="options">The confidence threshold, max_det and classes; null = predict defaults.</param>
    /// <returns>Per image, shape(n, 6) float32 on the input device, in the given order.</returns>
    public static IReadOnlyList<Tensor> Select(Tensor prediction, NmsOptions? options = null)
    {
        options ??= new NmsOptions();
        if (prediction.dim() != 3 || prediction.shape[2] != 6)
            throw new ArgumentException($"an end-to-end output is (b, k, 6), got ({string.Join(", ", prediction.shape)})", nameof(prediction));
        using var scope = NewDisposeScope();
        var rows = prediction.detach().to_type(ScalarType.Float32);                          // (b, k, 6)
        var outputs = new List<Tensor>();
        for (long image = 0; image < rows.shape[0]; image++)
        {
            var x = rows[image];                                                              // (k, 6)
            x = x[x.select(1, 4).gt(Scalars.Of(options.ConfidenceThreshold))];                            // (c, 6) score > conf
            x = x.narrow(0, 0, Math.Min(x.shape[0], options.MaxDetections));                  // [:max_det]
            if (options.Classes is { } keep)
            {
                var wanted = tensor(keep.Select(c => (float)c).ToArray(), device: x.device);  // (m)
                x = x[x.narrow(1, 5, 1).eq(wanted.unsqueeze(0)).any(1)];
            }
            outputs.Add(x.contiguous().MoveToOuterDisposeScope());
        }
        return outputs;
    }
}
