using Microsoft.ML.OnnxRuntime;
using Microsoft.ML.OnnxRuntime.Tensors;
using OpenCvSharp;
using Osprey.Evaluation;
using Osprey.Onnx;
using Osprey.Runtime;
using TorchSharp;
using static TorchSharp.torch;
using Tensor = TorchSharp.torch.Tensor;

namespace Osprey.Inference;

/// <summary>
/// Runs an exported ONNX graph (Osprey's or Ultralytics') in ONNX Runtime, as Ultralytics' AutoBackend does for
/// <c>model=*.onnx</c>: the class names, input size and end-to-end flag from the file's metadata; the same letterbox and
/// post-processing as <see cref="Predictor"/> (NMS on a (b, 4 + nc, A) output, the top-k rows of an end-to-end (b, k, 6)
/// one). A graph with a fixed input size runs at that size; one with a fixed batch runs a batch in chunks of it.
/// </summary>
public sealed class OnnxDetector : IDetector
{
    readonly InferenceSession session;
    readonly string inputName;
    readonly int fixedBatch;          // 0: dynamic
    readonly bool halfInput, endToEnd;

    /// <param name="path">The .onnx file.</param>
    /// <param name="options">Thresholds and input size (a graph with a fixed size overrides the size).</param>
    public OnnxDetector(string path, PredictOptions? options = null)
    {
        if (!File.Exists(path)) throw new FileNotFoundException($"ONNX file '{path}' not found.", path);
        using var sessionOptions = new SessionOptions { GraphOptimizationLevel = GraphOptimizationLevel.ORT_ENABLE_ALL };
        try
        {
            session = new InferenceSession(path, sessionOptions);
        }
        catch (OnnxRuntimeException e)
        {
            throw new InvalidDataException($"{path}: ONNX Runtime cannot load it ({e.Message}).", e);
        }
        try
        {
            var metadata = session.ModelMetadata.CustomMetadataMap;
            if (metadata.TryGetValue("task", out var task) && task != "detect")
                throw new InvalidDataException($"{path}: task '{task}' is not supported (detect only).");
            var (name, input) = session.InputMetadata.First();
            if (input.Dimensions.Length != 4 || input.Dimensions[1] != 3)
                throw new InvalidDataException($"{path}: input '{name}' has shape [{string.Join(", ", input.Dimensions)}], not (b, 3, h, w).");
            inputName = name;
            fixedBatch = Math.Max(0, input.Dimensions[0]);
            halfInput = input.ElementDataType == TensorElementType.Float16;
            endToEnd = metadata.TryGetValue("end2end", out var e2e) && e2e == "True";
            Names = metadata.TryGetValue("names", out var names) ? UltralyticsMetadata.ParseNames(names)
                : throw new InvalidDataException($"{path}: no 'names' in its metadata (not a YOLO export).");
            int size = input.Dimensions[2] > 0 ? input.Dimensions[2] : (options ?? new PredictOptions()).ImageSize;
            if (input.Dimensions[3] > 0 && input.Dimensions[3] != size)
                throw new InvalidDataException($"{path}: input {input.Dimensions[2]}×{input.Dimensions[3]} is not square.");
            Options = (options ?? new PredictOptions()) with { ImageSize = size };
            Path = path;
        }
        catch
        {
            session.Dispose();
            throw;
        }
    }

    /// <inheritdoc/>
    public string Backend => "onnxruntime";

    /// <summary>The file.</summary>
    public string Path { get; }

    /// <inheritdoc/>
    public IReadOnlyList<string> Names { get; }

    /// <inheritdoc/>
    public PredictOptions Options { get; }

    /// <inheritdoc/>
    public IReadOnlyList<Prediction> Predict(IReadOnlyList<Mat> bgrImages, IReadOnlyList<string>? sources = null)
    {
        if (bgrImages.Count == 0) return Array.Empty<Prediction>();
        var infos = new LetterboxInfo[bgrImages.Count];
        var boxed = Letterbox.ApplyAll(bgrImages, Options.ImageSize, infos);
        float[] pixels;
        try
        {
            pixels = Letterbox.ToPixels(boxed);
        }
        finally
        {
            foreach (var mat in boxed) mat.Dispose();
        }
        using var scope = NewDisposeScope();
        return Predictor.Postprocess(Detect(pixels, bgrImages.Count, Options.Nms), infos, Names, sources);
    }

    /// <summary>
    /// Runs the graph on model inputs (b, 3, S, S), RGB in [0, 1] at the graph's size, in chunks of a fixed batch, and
    /// post-processes each image's output: NMS, or an end-to-end graph's top-k rows above conf. Per image (n, 6) rows
    /// [x1, y1, x2, y2, conf, cls] in input pixels.
    /// </summary>
    public IReadOnlyList<Tensor> Detect(Tensor images, NmsOptions nms)
    {
        int count = (int)images.shape[0], size = Options.ImageSize;
        if (images.shape[2] != size || images.shape[3] != size)
            throw new ArgumentException($"{Path}: the graph takes {size}×{size} inputs, not {images.shape[2]}×{images.shape[3]} (imgsz={size}, rect=False).");
        return Detect(HostCopy.Floats(images), count, nms);
    }

    // The graph on row-major (count, 3, S, S) pixels, in chunks of the graph's fixed batch (a chunk's tail stays zero).
    IReadOnlyList<Tensor> Detect(float[] pixels, int count, NmsOptions nms)
    {
        int size = Options.ImageSize, image = 3 * size * size;
        int chunk = fixedBatch > 0 ? fixedBatch : Math.Max(count, 1);
        var kept = new List<Tensor>(count);
        for (int start = 0; start < count; start += chunk)
        {
            int n = Math.Min(chunk, count - start);
            var input = chunk == count ? pixels : new float[(long)chunk * image];
            if (!ReferenceEquals(input, pixels)) Array.Copy(pixels, (long)start * image, input, 0, (long)n * image);
            using var outputs = session.Run(new[] { Input(input, chunk, size) });
            var (values, shape) = Output(outputs[0]);
            var output = tensor(values, shape).narrow(0, 0, n);
            kept.AddRange(endToEnd ? EndToEndDetections.Select(output, nms) : Nms.NonMaxSuppression(output, nms));
        }
        return kept;
    }

    NamedOnnxValue Input(float[] pixels, int batch, int size)
    {
        var dims = new[] { batch, 3, size, size };
        return halfInput
            ? NamedOnnxValue.CreateFromTensor(inputName, new DenseTensor<Float16>(pixels.Select(v => (Float16)v).ToArray(), dims))
            : NamedOnnxValue.CreateFromTensor(inputName, new DenseTensor<float>(pixels, dims));
    }

    static (float[] Values, long[] Shape) Output(DisposableNamedOnnxValue value)
    {
        if (value.ElementType == TensorElementType.Float16)
        {
            var half = value.AsTensor<Float16>();
            return (half.ToArray().Select(h => (float)h).ToArray(), half.Dimensions.ToArray().Select(d => (long)d).ToArray());
        }
        var single = value.AsTensor<float>();
        return (single.ToArray(), single.Dimensions.ToArray().Select(d => (long)d).ToArray());
    }

    /// <inheritdoc/>
    public void Dispose() => session.Dispose();
}
