using Microsoft.ML.OnnxRuntime;
using OpenCvSharp;
using Osprey.Inference;
using Osprey.Tests.Cli;
using Osprey.Tests.Data;
using Osprey.Tests.Models;

namespace Osprey.Tests.Inference;

/// <summary>
/// The inference backends behind <see cref="IDetector"/>: <c>model=*.onnx</c> runs in ONNX Runtime (Ultralytics'
/// AutoBackend), checked against the reference detections ONNX Runtime made on the shared images, and against the TorchSharp
/// import of the same file; the backend rule and its errors.
/// </summary>
public class DetectorBackendTests
{
    [Fact]
    public void OnnxFileRunsInOnnxRuntimeAndMatchesTheReference()
    {
        using var detector = Detectors.Open(ReferenceDetections.OnnxPath);
        Assert.Equal("onnxruntime", detector.Backend);
        Assert.Equal(80, detector.Names.Count);
        Assert.Equal("person", detector.Names[0]);
        var problems = new List<string>();
        foreach (var expected in ReferenceDetections.Load())
        {
            using var image = Cv2.ImRead(expected.Image);
            problems.AddRange(ReferenceDetections.Compare(expected, detector.Predict(new[] { image })[0], 0.0011f, 0.11f));
        }
        Assert.True(problems.Count == 0, string.Join("\n", problems));
    }

    [Fact]
    public void BatchOnAFixedBatchGraphEqualsOneByOne()
    {
        // the shared file's input is [1, 3, 640, 640]: a batch of three runs as three chunks, in order
        using var detector = Detectors.Open(ReferenceDetections.OnnxPath);
        var images = ReferenceDetections.Load().Take(3).Select(e => Cv2.ImRead(e.Image)).ToList();
        try
        {
            var batch = detector.Predict(images, new[] { "a", "b", "c" });
            Assert.Equal(new[] { "a", "b", "c" }, batch.Select(p => p.Source));
            for (int i = 0; i < images.Count; i++)
            {
                var single = detector.Predict(new[] { images[i] })[0];
                Assert.Equal(single.Detections.Select(d => (d.ClassId, d.Confidence, d.Box)), batch[i].Detections.Select(d => (d.ClassId, d.Confidence, d.Box)));
                Assert.Equal((single.Width, single.Height), (batch[i].Width, batch[i].Height));
            }
        }
        finally
        {
            images.ForEach(i => i.Dispose());
        }
    }

    [Fact]
    public void TorchImportOfTheSameFileFindsTheSameObjects()
    {
        using var ort = Detectors.Open(ReferenceDetections.OnnxPath, "onnxruntime");
        using var torch = Detectors.Open(ReferenceDetections.OnnxPath, "torch");
        Assert.Equal("torch", torch.Backend);
        var bus = ReferenceDetections.Load().Single(e => e.Image.EndsWith("bus.jpg", StringComparison.Ordinal));
        using var image = Cv2.ImRead(bus.Image);
        var a = ort.Predict(new[] { image })[0];
        var b = torch.Predict(new[] { image })[0];
        Assert.Equal(a.Detections.Select(d => d.ClassId), b.Detections.Select(d => d.ClassId));
        var confidences = a.Detections.Zip(b.Detections, (x, y) => Math.Abs(x.Confidence - y.Confidence));
        Assert.All(confidences, difference => Assert.True(difference < 1e-3, $"confidence differs by {difference}"));
    }

    [Fact]
    public void BackendRuleAndItsErrors()
    {
        var onnx = Assert.Throws<ArgumentException>(() => Detectors.Open("yolov8n.yaml", "onnxruntime"));
        Assert.Contains("needs an exported .onnx model", onnx.Message);
        var unknown = Assert.Throws<ArgumentException>(() => Detectors.Open(ReferenceDetections.OnnxPath, "tensorrt"));
        Assert.Contains("backend=tensorrt", unknown.Message);
        string dir = TestModels.TempDir();
        try
        {
            string corrupt = Path.Combine(dir, "corrupt.onnx");
            File.WriteAllBytes(corrupt, Enumerable.Range(0, 1000).Select(i => (byte)(i * 37)).ToArray());
            var bad = Assert.Throws<InvalidDataException>(() => Detectors.Open(corrupt));
            Assert.Contains(corrupt, bad.Message);
            Assert.IsAssignableFrom<OnnxRuntimeException>(bad.InnerException);
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    [Fact]
    public void PredictSkipsAnUnreadableImageAndFailsOnlyWhenNothingCouldBeRead()
    {
        string dir = TestModels.TempDir();
        try
        {
            string images = Directory.CreateDirectory(Path.Combine(dir, "images")).FullName;
            File.Copy(Path.Combine(DataTestFiles.SharedData, "images", "bus.jpg"), Path.Combine(images, "bus.jpg"));
            File.WriteAllText(Path.Combine(images, "broken.jpg"), "not a jpeg");
            var (code, output, err) = CliAppTests.Run("predict", $"model={ReferenceDetections.OnnxPath}", $"source={images}", $"project={dir}");
            Assert.True(code == 0, output + err);
            Assert.Contains($"Image Read Error {Path.Combine(images, "broken.jpg")}", output);
            Assert.Contains("1 images, 5 detections, 1 unreadable skipped", output);   // bus.jpg: 4 persons and a bus
            Assert.Contains("onnxruntime", output);
            Assert.True(File.Exists(Path.Combine(dir, "predict", "bus.jpg")));

            File.Delete(Path.Combine(images, "bus.jpg"));
            (code, output, err) = CliAppTests.Run("predict", $"model={ReferenceDetections.OnnxPath}", $"source={images}", $"project={dir}");
            Assert.Equal(1, code);
            Assert.Contains("nothing could be read", output + err);
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }
}

/// <summary><c>osprey val model=*.onnx</c> runs the graph in ONNX Runtime, with the same metrics as its TorchSharp import.</summary>
public class OnnxValidationTests
{
    [Fact]
    public void ValOnCoco8InOnnxRuntimeEqualsTheTorchImport()
    {
        string dir = TestModels.TempDir();
        try
        {
            string data = Path.Combine(DataTestFiles.SharedData, "coco8", "coco8.yaml");
            Osprey.Evaluation.ValidationReport Val(string backend) => Osprey.Evaluation.ValidationRun.Run(Osprey.Config.ArgsParser.Parse(new[]
            {
                $"model={ReferenceDetections.OnnxPath}", $"data={data}", "batch=2", "device=cpu", $"project={dir}", "plots=False",
                $"backend={backend}",
            }));
            var ort = Val("auto");
            var torch = Val("torch");
            Assert.Equal("onnxruntime", ort.Backend);
            Assert.Equal("torch", torch.Backend);
            Assert.Equal(4, ort.Result.Images);
            Assert.True(ort.Result.Metrics.MAP50To95 > 0.3, $"mAP50-95 {ort.Result.Metrics.MAP50To95:0.000}: COCO-pretrained weights on coco8");
            Assert.Equal(torch.Result.Metrics.MAP50, ort.Result.Metrics.MAP50, 3);
            Assert.Equal(torch.Result.Metrics.MAP50To95, ort.Result.Metrics.MAP50To95, 3);

            var wrongSize = Assert.Throws<Osprey.Config.ArgumentsException>(() => Osprey.Evaluation.ValidationRun.Run(Osprey.Config.ArgsParser.Parse(new[]
                { $"model={ReferenceDetections.OnnxPath}", $"data={data}", "imgsz=320", "device=cpu", $"project={dir}" })));
            Assert.Contains("takes 640×640 inputs", wrongSize.Message);
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    [Fact]
    public void ValOfADynamicExportRunsAtTheGivenImgsz()
    {
        // a graph with symbolic batch and size takes imgsz=… (only a fixed graph insists on its own size)
        string dir = TestModels.TempDir();
        try
        {
            string onnx = Path.Combine(dir, "dynamic.onnx");
            using (var model = Osprey.Models.ModelFactory.Create("yolov8n.yaml", 80))
            {
                model.eval();
                Osprey.Onnx.OnnxExporter.Export(model, onnx, new Osprey.Onnx.OnnxExportOptions { Dynamic = true });
            }
            var report = Osprey.Evaluation.ValidationRun.Run(Osprey.Config.ArgsParser.Parse(new[]
            {
                $"model={onnx}", $"data={Path.Combine(DataTestFiles.SharedData, "coco8", "coco8.yaml")}", "imgsz=320", "batch=4",
                "device=cpu", $"project={dir}", "plots=False",
            }));
            Assert.Equal("onnxruntime", report.Backend);
            Assert.Equal(4, report.Result.Images);
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }
}
