using Osprey.Inference;
using Osprey.Models;
using Osprey.Onnx;
using Osprey.Tests.Inference;

namespace Osprey.Tests.Onnx;

/// <summary>Importing the real Ultralytics int8 YOLOv8n ONNX export and matching ONNX Runtime's reference detections.</summary>
public class OnnxImportTests
{
    [Fact]
    public void ImportsScaleNamesAndEveryConvolution()
    {
        var result = OnnxImport.Import(ReferenceDetections.OnnxPath);
        using var model = result.Model;
        Assert.Equal("n", result.Scale);
        Assert.Equal(80, result.Nc);
        Assert.Equal(64, result.Convolutions);      // 63 model convolutions + the DFL's
        Assert.Equal(64, result.Quantized);
        Assert.Equal("person", model.Names[0]);
        Assert.Equal("toothbrush", model.Names[79]);
        Assert.Equal(3157200, model.ParameterCount); // YOLOv8n, unfused
        Assert.False(model.IsFused);
    }

    /// <summary>
    /// The proof: `predict` with the imported model (ONNX Runtime's arithmetic emulated: DynamicQuantization,
    /// MlasLogistic, MlasSoftmax) finds on the demo images and the eight coco8 images exactly the reference's
    /// detections (same count per image, nothing extra) and each within conf ± 0.03 and box ± 4 px.
    /// </summary>
    [Fact]
    public void PredictMatchesOnnxRuntimeReference()
    {
        using var predictor = Predictor.Load(ReferenceDetections.OnnxPath);
        var problems = new List<string>();
        var errors = new List<(float Conf, float Box)>();
        int images = 0, expectedCount = 0;
        foreach (var expected in ReferenceDetections.Load())
        {
            problems.AddRange(ReferenceDetections.Compare(expected, predictor.Predict(expected.Image), confTolerance: 0.03f,
                boxTolerance: 4f, errors));
            expectedCount += expected.Detections.Count;
            images++;
        }
        Assert.Equal(10, images); // bus, zidane and the eight coco8 images
        Assert.Equal(31, expectedCount);
        Assert.Equal(31, errors.Count);
        Assert.True(problems.Count == 0, string.Join("\n", problems));
    }

    /// <summary>
    /// The imported model's decoded output (b, 84, 8400) equals ONNX Runtime's output0 of the file bit for bit on
    /// the same letterboxed input: the integer convolutions, ONNX Runtime's sigmoid and softmax and the rescale order
    /// leave nothing to tolerate.
    /// </summary>
    [Fact]
    public void ImportedOutputEqualsOnnxRuntimeBitForBit()
    {
        using var model = OnnxImport.Load(ReferenceDetections.OnnxPath);
        model.eval();
        model.Fuse();
        using var ort = new OrtRunner(ReferenceDetections.OnnxPath);
        using var image = OpenCvSharp.Cv2.ImRead(Path.Combine(Osprey.Tests.Data.DataTestFiles.SharedData, "images", "bus.jpg"));
        using var boxed = Letterbox.Apply(image, 640, 640, out _);
        using var scope = TorchSharp.torch.NewDisposeScope();
        using var noGrad = TorchSharp.torch.no_grad();
        var input = Letterbox.ToTensor(new[] { boxed });
        var expected = ort.Run(input);
        var actual = model.Predict(input);
        Assert.Equal(expected.shape, actual.shape);
        var differ = actual.ne(expected);
        Assert.True(!differ.any().item<bool>(),
            $"{differ.sum().item<long>()} of {expected.numel()} values differ, largest by {(actual - expected).abs().max().item<float>()}");
    }

    [Fact]
    public void OnnxWeightsTransferToAnotherClassCount()
    {
        // model=yolov8n_int8.onnx with a 5-class dataset: everything but the class outputs comes from the file.
        using var imported = ModelFactory.Create(ReferenceDetections.OnnxPath);
        using var transferred = ModelFactory.Create(ReferenceDetections.OnnxPath, nc: 5);
        Assert.Equal(5, transferred.Nc);
        var a = imported.state_dict();
        var b = transferred.state_dict();
        foreach (string key in new[] { "model.0.conv.weight", "model.21.cv2.conv.weight", "model.22.cv2.0.2.weight" })
            Assert.True(a[key].eq(b[key]).all().item<bool>(), key);
        Assert.Equal(new long[] { 5, 64, 1, 1 }, b["model.22.cv3.0.2.weight"].shape); // class branch rebuilt: c3 = max(64, min(nc, 100))
    }

    [Fact]
    public void ParsesPythonDictNames()
    {
        var names = UltralyticsMetadata.ParseNames("{0: 'person', 1: \"it's\", 2: 'a\\\\b'}");
        Assert.Equal(new[] { "person", "it's", "a\\b" }, names);
        Assert.Equal("{0: 'person', 1: \"it's\", 2: 'a\\\\b'}", UltralyticsMetadata.FormatNames(names));
        Assert.Equal(new[] { 640, 480 }, UltralyticsMetadata.ParseInts("[640, 480]"));
    }
}

/// <summary>ONNX Runtime here, with our letterbox and NMS, reproduces the reference file (checks the pipeline).</summary>
public class OrtReferenceTests
{
    [Fact]
    public void OrtWithOurPreAndPostprocessingMatchesReference()
    {
        using var ort = new OrtRunner(ReferenceDetections.OnnxPath);
        var names = UltralyticsMetadata.ParseNames(ort.Session.ModelMetadata.CustomMetadataMap["names"]);
        var problems = new List<string>();
        foreach (var expected in ReferenceDetections.Load())
            problems.AddRange(ReferenceDetections.Compare(expected, ort.Predict(expected.Image, names), 0.0011f, 0.11f));
        Assert.True(problems.Count == 0, string.Join("\n", problems));
    }
}
