using Osprey.Runtime;
using Osprey.Losses;
using static TorchSharp.torch;

namespace Osprey.Evaluation;

/// <summary>Non-maximum suppression and letterbox undo, as Ultralytics <c>ops.non_max_suppression</c> / <c>scale_boxes</c>.</summary>
public static class Nms
{
    /// <summary>
    /// Class-aware NMS of the inference output.
    /// </summary>
    /// <param name="prediction">shape(b, 4 + nc, A): centre-xywh in input pixels, then class scores (sigmoid).</param>
    /// <param name="options">Thresholds and limits; null = predict defaults.</param>
    /// <returns>Per image, shape(n, 6) [x1, y1, x2, y2, conf, cls] float32 on the input device, by descending conf.</returns>
    public static IReadOnlyList<Tensor> NonMaxSuppression(Tensor prediction, NmsOptions? options = null)
    {
        options ??= new NmsOptions();
        using var scope = NewDisposeScope();
        long batch = prediction.shape[0];
        long numClasses = prediction.shape[1] - 4;
        var device = prediction.device;
        var rows = prediction.detach().to(CPU).to_type(ScalarType.Float32).transpose(-1, -2); // (b, A, 4 + nc)
        bool multiLabel = options.MultiLabel && numClasses > 1;
        var outputs = new List<Tensor>();
        for (long image = 0; image < batch; image++)
        {
            var x = rows[image];                                                                // (A, 4 + nc)
            var candidates = x.narrow(1, 4, numClasses).amax(new long[] { 1 }).gt(Scalars.Of(options.ConfidenceThreshold));
            x = x[candidates];                                                                  // (c, 4 + nc)
            var box = BoxOps.XywhToXyxy(x.narrow(1, 0, 4));                                     // (c, 4)
            var classScores = x.narrow(1, 4, numClasses);                                       // (c, nc)
            Tensor detections;                                                                  // (d, 6)
            if (multiLabel)
            {
                var pairs = classScores.gt(Scalars.Of(options.ConfidenceThreshold)).nonzero();              // (d, 2) row-major
                var anchor = pairs.select(1, 0);
                var cls = pairs.select(1, 1);
                detections = cat(new[]
                {
                    box[anchor], classScores[anchor, cls].unsqueeze(1), cls.to_type(ScalarType.Float32).unsqueeze(1),
                }, 1);
            }
            else
            {
                var (conf, cls) = classScores.max(1, keepdim: true);                            // (c, 1) each
                detections = cat(new[] { box, conf, cls.to_type(ScalarType.Float32) }, 1)[conf.view(-1).gt(Scalars.Of(options.ConfidenceThreshold))];
            }
            if (options.Classes is { } keep)
            {
                var wanted = tensor(keep.Select(c => (float)c).ToArray());                      // (k)
                detections = detections[detections.narrow(1, 5, 1).eq(wanted.unsqueeze(0)).any(1)];
            }
            outputs.Add(Suppress(detections, options).to(device).MoveToOuterDisposeScope());
        }
        return outputs;
    }

    /// <summary>Greedy suppression of (n, 6) rows [x1, y1, x2, y2, conf, cls]; the kept rows by descending conf.</summary>
    private static Tensor Suppress(Tensor detections, NmsOptions options)
    {
        long count = detections.shape[0];
        if (count == 0) return zeros(0, 6);
        var values = Osprey.Runtime.HostCopy.Floats(detections);                               // row-major (n·6)
        // Stable descending order by score (torchvision sorts by score descending).
        var order = Enumerable.Range(0, (int)count).OrderByDescending(i => values[i * 6 + 4]).ToArray();
        if (order.Length > options.MaxNms) order = order[..options.MaxNms];

        int n = order.Length;
        var x1 = new float[n]; var y1 = new float[n]; var x2 = new float[n]; var y2 = new float[n]; var area = new float[n];
        for (int k = 0; k < n; k++)
        {
            int row = order[k];
            float offset = options.Agnostic ? 0f : values[row * 6 + 5] * options.MaxWh;         // class offset trick
            x1[k] = values[row * 6] + offset; y1[k] = values[row * 6 + 1] + offset;
            x2[k] = values[row * 6 + 2] + offset; y2[k] = values[row * 6 + 3] + offset;
            area[k] = (x2[k] - x1[k]) * (y2[k] - y1[k]);
        }
        var suppressed = new bool[n];
        var kept = new List<int>();
        for (int i = 0; i < n && kept.Count < options.MaxDetections; i++)
        {
            if (suppressed[i]) continue;
            kept.Add(order[i]);
            for (int j = i + 1; j < n; j++)
            {
                if (suppressed[j]) continue;
                float w = MathF.Max(0f, MathF.Min(x2[i], x2[j]) - MathF.Max(x1[i], x1[j]));
                float h = MathF.Max(0f, MathF.Min(y2[i], y2[j]) - MathF.Max(y1[i], y1[j]));
                float inter = w * h;
                if (inter / (area[i] + area[j] - inter) > options.IouThreshold) suppressed[j] = true;
            }
        }
        return detections.index_select(0, tensor(kept.Select(k => (long)k).ToArray()));
    }

    /// <summary>
    /// Ultralytics <c>scale_boxes</c>: undoes the letterbox (subtract padding, divide by gain) and clips to the
    /// original image.
    /// </summary>
    /// <param name="boxes">shape(n, ≥4) xyxy in letterboxed input pixels; extra columns are copied through.</param>
    /// <param name="inputHeight">Letterboxed input height.</param>
    /// <param name="inputWidth">Letterboxed input width.</param>
    /// <param name="originalHeight">Original image height.</param>
    /// <param name="originalWidth">Original image width.</param>
    /// <param name="ratioPad">Optional known (gain, padX, padY) from the letterbox; null recomputes them.</param>
    /// <returns>A new tensor, xyxy in original pixels.</returns>
    public static Tensor ScaleBoxes(Tensor boxes, int inputHeight, int inputWidth, int originalHeight, int originalWidth,
        (double Gain, double PadX, double PadY)? ratioPad = null)
    {
        using var scope = NewDisposeScope();
        double gain, padX, padY;
        if (ratioPad is { } known)
            (gain, padX, padY) = known;
        else
        {
            gain = Math.Min((double)inputHeight / originalHeight, (double)inputWidth / originalWidth);
            // Python round() is round-half-to-even, as Math.Round's default.
            padX = Math.Round((inputWidth - originalWidth * gain) / 2 - 0.1);
            padY = Math.Round((inputHeight - originalHeight * gain) / 2 - 0.1);
        }
        var result = boxes.clone();
        var pad = tensor(new[] { (float)padX, (float)padY, (float)padX, (float)padY }, device: boxes.device); // (4)
        var xyxy = (result.narrow(1, 0, 4) - pad) / gain;                                      // (n, 4)
        var x = xyxy.index_select(1, tensor(new long[] { 0, 2 }, device: boxes.device)).clamp(0, originalWidth);
        var y = xyxy.index_select(1, tensor(new long[] { 1, 3 }, device: boxes.device)).clamp(0, originalHeight);
        result.narrow(1, 0, 4).copy_(stack(new[] { x.select(1, 0), y.select(1, 0), x.select(1, 1), y.select(1, 1) }, 1));
        return result.MoveToOuterDisposeScope();
    }
}
