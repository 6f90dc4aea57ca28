using OpenCvSharp;
using Osprey.Evaluation;
using Osprey.Models;
using Osprey.Runtime;
using TorchSharp;
using static TorchSharp.torch;

namespace Osprey.Inference;

/// <summary>
/// Detects objects in images with a <see cref="DetectionModel"/> as Ultralytics' predict does: letterbox to a square
/// <see cref="PredictOptions.ImageSize"/> (pad 114), BGR → RGB, /255, the model's decoded output, the head's
/// post-processing (class-offset NMS; an end-to-end head's top-k rows above conf, no NMS), boxes back to original pixels
/// (minus padding, divided by the gain, clipped).
/// </summary>
public sealed class Predictor : IDetector
{
    private readonly DetectionModel model;
    private readonly bool ownsModel;
    private readonly Device device;
    private readonly ScalarType dtype;

    /// <param name="model">The model; put in eval mode and fused (fusing changes it in place).</param>
    /// <param name="options">Thresholds and input size; null = defaults.</param>
    /// <param name="device">Where to run; null = CPU.</param>
    /// <param name="ownsModel">Dispose the model with the predictor.</param>
    public Predictor(DetectionModel model, PredictOptions? options = null, Device? device = null, bool ownsModel = false)
    {
        Options = options ?? new PredictOptions();
        int maxStride = (int)model.Strides.Max();
        if (Options.ImageSize < maxStride || Options.ImageSize % maxStride != 0)
            throw new ArgumentException($"imgsz={Options.ImageSize}: must be a positive multiple of the largest stride ({maxStride}).");
        this.model = model;
        this.ownsModel = ownsModel;
        this.device = device ?? CPU;
        dtype = Options.Half && this.device.type == DeviceType.CUDA ? ScalarType.Float16 : ScalarType.Float32;
        model.eval();
        if (!model.IsFused) model.Fuse();
        model.to(this.device);
        if (dtype == ScalarType.Float16) model.half();
    }

    /// <summary>Loads a model (YAML, weights, or ONNX export; see <see cref="ModelFactory.Create"/>) into a predictor that owns it.</summary>
    public static Predictor Load(string modelPath, PredictOptions? options = null, Device? device = null) =>
        new(ModelFactory.Create(modelPath), options, device, ownsModel: true);

    /// <summary>The settings.</summary>
    public PredictOptions Options { get; }

    /// <inheritdoc/>
    public string Backend => "torch";

    /// <summary>The model's class names.</summary>
    public IReadOnlyList<string> Names => model.Names;

    /// <summary>The (fused, eval-mode) model.</summary>
    public DetectionModel Model => model;

    /// <summary>Raised before every forward with the model input's shape (b, 3, S, S).</summary>
    public event Action<long[]>? Forwarding;

    /// <summary>Detects objects in one BGR image.</summary>
    public Prediction Predict(Mat bgr, string? source = null) => Predict(new[] { bgr }, source is null ? null : new[] { source })[0];

    /// <summary>Reads an image file (OpenCV imread, BGR) and detects objects in it.</summary>
    public Prediction Predict(string imagePath)
    {
        using var image = Cv2.ImRead(imagePath, ImreadModes.Color);
        if (image.Empty()) throw new InvalidDataException($"{imagePath}: not an image OpenCV can read.");
        return Predict(image, imagePath);
    }

    /// <summary>Detects objects in a batch of BGR images (any sizes), one model call.</summary>
    public IReadOnlyList<Prediction> Predict(IReadOnlyList<Mat> bgrImages, IReadOnlyList<string>? sources = null)
    {
        if (bgrImages.Count == 0) return Array.Empty<Prediction>();
        int size = Options.ImageSize;
        var infos = new LetterboxInfo[bgrImages.Count];
        var boxed = Letterbox.ApplyAll(bgrImages, size, infos);
        try
        {
            using var scope = NewDisposeScope();
            using var noGrad = no_grad();
            var input = Letterbox.ToTensor(boxed).to(device).to_type(dtype);        // (b, 3, S, S)
            Forwarding?.Invoke(input.shape);
            var output = model.Predict(input).to_type(ScalarType.Float32);          // (b, 4 + nc, A), end-to-end (b, k, 6)
            return Postprocess(model.Head.Postprocess(output, Options.Nms), infos, Names, sources);
        }
        finally
        {
            foreach (var mat in boxed) mat.Dispose();
        }
    }

    /// <summary>
    /// NMS and letterbox undo for a decoded (b, 4 + nc, A) output of any backend (TorchSharp, ONNX Runtime …).
    /// </summary>
    public static IReadOnlyList<Prediction> Postprocess(Tensor output, IReadOnlyList<LetterboxInfo> infos, IReadOnlyList<string> names,
        NmsOptions nms, IReadOnlyList<string>? sources = null)
    {
        using var scope = NewDisposeScope();
        return Postprocess(Nms.NonMaxSuppression(output, nms), infos, names, sources);   // b × (n, 6)
    }

    /// <summary>
    /// Letterbox undo for detections already selected (per image (n, 6) rows [x1, y1, x2, y2, conf, cls] in input pixels:
    /// NMS's, or <see cref="EndToEndDetections.Select"/> of an end-to-end output).
    /// </summary>
    public static IReadOnlyList<Prediction> Postprocess(IReadOnlyList<Tensor> kept, IReadOnlyList<LetterboxInfo> infos,
        IReadOnlyList<string> names, IReadOnlyList<string>? sources = null)
    {
        using var scope = NewDisposeScope();
        var results = new Prediction[infos.Count];
        for (int i = 0; i < infos.Count; i++)
        {
            var info = infos[i];
            var scaled = Nms.ScaleBoxes(kept[i].to(CPU), info.InputHeight, info.InputWidth, info.Height, info.Width,
                (info.Gain, info.PadX, info.PadY));
            var values = HostCopy.Floats(scaled);
            var detections = new List<Detection>();
            for (int j = 0; j + 5 < values.Length; j += 6)
            {
                int cls = (int)values[j + 5];
                detections.Add(new Detection(new Box(values[j], values[j + 1], values[j + 2], values[j + 3]), values[j + 4], cls,
                    cls < names.Count ? names[cls] : cls.ToString(System.Globalization.CultureInfo.InvariantCulture)));
            }
            results[i] = new Prediction(sources is null ? null : sources[i], info.Width, info.Height, detections, names);
        }
        return results;
    }

    /// <inheritdoc/>
    public void Dispose()
    {
        if (ownsModel) model.Dispose();
    }
}
