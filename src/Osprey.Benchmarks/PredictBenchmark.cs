using Osprey.Evaluation;
using Osprey.Inference;
using Osprey.Models;
using Osprey.Onnx;
using Osprey.Runtime;
using OpenCvSharp;
using static TorchSharp.torch;

namespace Osprey.Benchmarks;

/// <summary>
/// The TorchSharp half of <c>osprey bench predict</c>: the model fused in eval mode, its ONNX export (for another
/// runtime to time on the same weights), and batch-1 latency on the CPU of the forward (decoded output, as an ONNX
/// Runtime session runs the exported graph) and of the forward plus the head's post-processing: Ultralytics' NMS for
/// YOLOv8 and YOLO11, the confidence filter of the one-to-one top-k rows for YOLOv10 (no NMS). The input is a random
/// image, or a real one letterboxed to the input size (the number of candidates NMS sees depends on it).
/// </summary>
public sealed class PredictBenchmark : IDisposable
{
    private readonly DetectionModel model;
    private readonly Tensor input;

    /// <param name="modelPath">A model YAML, weights or an ONNX export (see <see cref="ModelFactory.Create"/>).</param>
    /// <param name="imageSize">Square input size, a multiple of the largest stride.</param>
    /// <param name="nms">Post-processing thresholds (predict's: conf 0.25, iou 0.7, max_det 300).</param>
    /// <param name="imagePath">An image to letterbox as the input; null = a random image.</param>
    /// <param name="seed">Seed of the random input image.</param>
    public PredictBenchmark(string modelPath, int imageSize, NmsOptions nms, string? imagePath = null, int seed = 0)
    {
        model = ModelFactory.Create(modelPath);
        int stride = (int)model.Strides.Max();
        if (imageSize < stride || imageSize % stride != 0)
        {
            model.Dispose();
            throw new ArgumentException($"imgsz={imageSize}: must be a positive multiple of the largest stride ({stride}).");
        }
        model.eval();
        model.Fuse();
        ImageSize = imageSize;
        Thresholds = nms;
        EndToEnd = model.Head.EndToEnd;
        input = imagePath is null ? RandomImage(imageSize, seed) : LetterboxedImage(imagePath, imageSize);
    }

    /// <summary>The input size.</summary>
    public int ImageSize { get; }

    /// <summary>The post-processing thresholds.</summary>
    public NmsOptions Thresholds { get; }

    /// <summary>True when the head selects its detections without NMS (YOLOv10's one-to-one top-k).</summary>
    public bool EndToEnd { get; }

    /// <summary>The input as a flat float array (row-major (1, 3, S, S)), for another runtime.</summary>
    public float[] InputValues() => input.data<float>().ToArray();

    /// <summary>Writes the fused model as ONNX (static batch 1 at <see cref="ImageSize"/>) to <paramref name="path"/>.</summary>
    public void Export(string path) => OnnxExporter.Export(model, path, new OnnxExportOptions { Height = ImageSize, Width = ImageSize });

    /// <summary>
    /// Batch-1 latency of the fused TorchSharp model in the same runs: the forward (decoded output), the head's
    /// post-processing, and both.
    /// </summary>
    public (LatencyStats Forward, LatencyStats Postprocess, LatencyStats Total) TimeTorch(int warmup, int runs) =>
        Latency.MeasurePhases(lap =>
        {
            using var scope = NewDisposeScope();
            using var noGrad = no_grad();
            var output = model.Predict(input);
            lap();
            model.Head.Postprocess(output, Thresholds);
        }, warmup, runs);

    /// <summary>
    /// Post-processes a decoded output of any backend (flat row-major values of shape <paramref name="shape"/>:
    /// (1, 4 + nc, A), or (1, k, 6) for an end-to-end head) with the model's head; returns the detections kept.
    /// </summary>
    public int Postprocess(float[] values, long[] shape)
    {
        using var scope = NewDisposeScope();
        return (int)model.Head.Postprocess(tensor(values, shape), Thresholds)[0].shape[0];
    }

    /// <summary>The TorchSharp output's detections kept and, for an NMS head, the candidates above the threshold.</summary>
    public (int Kept, int Candidates) Count()
    {
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        var output = model.Predict(input);
        int kept = (int)model.Head.Postprocess(output, Thresholds)[0].shape[0];
        if (EndToEnd) return (kept, kept);
        long nc = output.shape[1] - 4;
        int candidates = (int)output[0].narrow(0, 4, nc).amax(0).gt(Scalars.Of(Thresholds.ConfidenceThreshold)).sum().item<long>();
        return (kept, candidates);
    }

    /// <summary>Intra-op threads TorchSharp uses.</summary>
    public static int TorchThreads => get_num_threads();

    /// <inheritdoc/>
    public void Dispose()
    {
        input.Dispose();
        model.Dispose();
    }

    private static Tensor RandomImage(int imageSize, int seed)
    {
        using var generator = new Generator((ulong)seed);
        return rand(new long[] { 1, 3, imageSize, imageSize }, generator: generator);   // (1, 3, S, S) in [0, 1)
    }

    private static Tensor LetterboxedImage(string imagePath, int imageSize)
    {
        using var image = Cv2.ImRead(imagePath, ImreadModes.Color);
        if (image.Empty()) throw new InvalidDataException($"{imagePath}: not an image OpenCV can read.");
        using var boxed = Letterbox.Apply(image, imageSize, imageSize, out _);
        using var scope = NewDisposeScope();
        return Letterbox.ToTensor(new[] { boxed }).MoveToOuterDisposeScope();
    }
}
