using Osprey.Models;
using Osprey.Onnx;
using static TorchSharp.torch;

namespace Osprey.Benchmarks;

/// <summary>
/// The TorchSharp half of <c>osprey bench predict</c>: the model fused in eval mode, its ONNX export (for another
/// runtime to time on the same weights) and batch-1 forward latency on the CPU (decoded output, no NMS, no letterbox,
/// as an ONNX Runtime session runs the exported graph).
/// </summary>
public sealed class PredictBenchmark : IDisposable
{
    private readonly DetectionModel model;
    private readonly Tensor input;

    /// <param name="modelPath">A model YAML, weights or an ONNX export (see <see cref="ModelFactory.Create"/>).</param>
    /// <param name="imageSize">Square input size, a multiple of the largest stride.</param>
    /// <param name="seed">Seed of the random input image.</param>
    public PredictBenchmark(string modelPath, int imageSize, int seed = 0)
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
        var generator = new Generator((ulong)seed);
        input = rand(new long[] { 1, 3, imageSize, imageSize }, generator: generator);   // (1, 3, S, S) in [0, 1)
        generator.Dispose();
    }

    /// <summary>The input size.</summary>
    public int ImageSize { get; }

    /// <summary>The random input as a flat float array (row-major (1, 3, S, S)), for another runtime.</summary>
    public float[] InputValues() => input.data<float>().ToArray();

    /// <summary>Writes the fused model as ONNX (static batch 1 at <see cref="ImageSize"/>) to <paramref name="path"/>.</summary>
    public void Export(string path) => OnnxExporter.Export(model, path, new OnnxExportOptions { Height = ImageSize, Width = ImageSize });

    /// <summary>Batch-1 forward latency of the fused TorchSharp model on the CPU.</summary>
    public LatencyStats TimeTorch(int warmup, int runs) => Latency.Measure(() =>
    {
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        model.Predict(input);
    }, warmup, runs);

    /// <summary>Intra-op threads TorchSharp uses.</summary>
    public static int TorchThreads => get_num_threads();

    /// <inheritdoc/>
    public void Dispose()
    {
        input.Dispose();
        model.Dispose();
    }
}
